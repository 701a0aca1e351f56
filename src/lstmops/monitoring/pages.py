"""The stakeholder report's HTML: plain words first, numbers second, every data string escaped.

Pure functions from what :mod:`lstmops.monitoring.report` gathered to HTML text; no file
I/O. The style sheet is inline and there are no scripts, so a page is one file that
opens from disk with no network.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

PREFECT_UI = "http://127.0.0.1:4200"
FLOW_NAME = "lstmops-update"
VERDICT_WORDS = {
    "PROMOTE": "recommends a change: a candidate is better than the deployed model beyond chance",
    "NO-CHANGE": "recommends no change: no candidate can beat the deployed model by the minimum gain",
    "INCONCLUSIVE": "could not tell yet: the candidates might be better, but not clearly enough",
}
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:62rem;margin:1.5rem auto;padding:0 1rem;
color:#1d2733;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d5dde5}
.made{color:#5b6b7b;font-size:.85rem;margin-top:0}.summary{font-size:1.05rem}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}th,td{border:1px solid #d5dde5;padding:.2rem .45rem;
text-align:left;vertical-align:top}th{background:#f1f4f7}
.pass{color:#1b7a3a;font-weight:600}.fail{color:#b3261e;font-weight:600}
.verdict{display:inline-block;padding:.1rem .5rem;border-radius:.3rem;font-weight:700;background:#e8edf2}
.verdict.PROMOTE{background:#d8f0df}.verdict.NO-CHANGE{background:#e8edf2}.verdict.INCONCLUSIVE{background:#fbefd5}
pre{background:#f1f4f7;padding:.5rem;overflow-x:auto}svg.chart{max-width:100%;height:auto;display:block}
.empty{color:#5b6b7b;font-style:italic}nav a{font-size:.9rem}
"""


def e(value: Any) -> str:
    """Any value as escaped HTML text."""
    return html.escape(str(value))


def num(value: Any) -> str:
    """A number in four significant digits, or a dash."""
    return "–" if value is None else f"{value:.4g}" if isinstance(value, (int, float)) else str(value)


def page(title: str, body: str) -> str:
    """A complete, self-contained HTML document."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """A table of already-escaped cells (headers are escaped here)."""
    head = "".join(f"<th>{e(x)}</th>" for x in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{e(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def empty(sentence: str) -> str:
    """A clear sentence where data is missing."""
    return f'<p class="empty">{e(sentence)}</p>'


def _link(href: str, text: str) -> str:
    return f'<a href="{e(quote(href))}">{e(text)}</a>'


# --- sentences ----------------------------------------------------------------------------------


def deployed_words(state: Any) -> str:
    """Which version serves and since when, in one or two sentences."""
    if state.champion is None:
        return "No model is deployed yet."
    text = f"v{state.champion} is the deployed model"
    last = next((row for row in state.ledger if row.champion == state.champion), None)
    if last is not None:
        verb = "rolled back to" if last.action == "rollback" else "promoted"
        text += f" ({verb} on {last.at:%Y-%m-%d} by {last.actor}: “{last.reason}”)"
    return text + (f"; v{state.previous} is kept as the previous model." if state.previous else ".")


def skill_words(state: Any) -> str:
    """The deployed model's latest daily skill, beside the previous model's on the same requests."""
    latest = state.latest_skill()
    if latest is None:
        return "No scored predictions of the deployed model yet, so its skill is not known."
    text = (f"On {latest['period']} its {state.metric} was {num(latest[state.metric])} over "
            f"{latest['n']} scored predictions")
    shadow = state.shadow_on(latest["period"])
    if shadow is not None:
        text += f"; the previous model v{shadow['model_version']}, run in shadow on the same requests, got " \
                f"{num(shadow[state.metric])}"
    return text + f" ({'higher' if state.higher_is_better else 'lower'} is better)."


def monitoring_words(state: Any) -> str:
    """The latest monitoring check in its own words."""
    if not state.checks:
        return f"Monitoring has not checked {state.problem} yet."
    last = state.latest_finding()
    span = f"on {last['period']}" if last.get("interval") == "day" else f"in the week of {last['period']}"
    return f"Monitoring {span}: {last.get('words') or 'no finding recorded'}"


def rollback_words(state: Any) -> str | None:
    """The rollback recommendation, when a recent check found the deployed model worse than the previous one."""
    from lstmops.monitoring.checks import recommends_rollback, rollback_command

    if not state.checks or state.previous is None:
        return None
    last = state.latest_finding()
    if not recommends_rollback(last) or last.get("champion_version") != state.champion:
        return None
    return (f"Recommended: roll back to v{state.previous}. Monitoring on {last['period']} found the deployed "
            f"v{state.champion} worse than v{state.previous} on the same requests; to restore it: "
            f"{rollback_command(state.problem)}")


def pending_words(state: Any) -> str:
    """Whether anything awaits a person's decision."""
    if not state.pending:
        return "Nothing awaits a decision."
    ids = ", ".join(f"#{p.id} (v{p.candidate_version})" for p in state.pending)
    return f"{len(state.pending)} proposal{'s' if len(state.pending) > 1 else ''} await{'s' if len(state.pending) == 1 else ''} your approval: {ids}."


def status_line(state: Any) -> str:
    """One line per problem for the index."""
    parts = [f"v{state.champion} deployed" if state.champion is not None else "no model deployed"]
    latest = state.latest_skill()
    parts.append(f"{state.metric} {num(latest[state.metric])} on {latest['period']}" if latest
                 else "no skill measured yet")
    if state.checks:
        last = state.latest_finding()
        parts.append(f"monitoring {last['period']}: {last.get('kind') or 'none'}"
                     + (" (flagged)" if last.get("flagged") else ""))
        if rollback_words(state):
            parts.append(f"recommended: roll back to v{state.previous}")
    else:
        parts.append("not monitored yet")
    parts.append(f"awaiting approval: {'yes, #' + ', #'.join(str(p.id) for p in state.pending) if state.pending else 'no'}")
    return "; ".join(parts)


# --- the gate's decision as saved ---------------------------------------------------------------


def decision_of(gate: Mapping[str, Any]) -> Any:
    """The gate's ``Decision`` back from its saved evidence (``gate.json``), to word it as the update code does."""
    from lstmops.update.gate import CandidateResult, Decision, GateRules, Test, Verdict

    candidates = []
    for c in gate.get("candidates") or []:
        tests = {ref: Test(**{**t, "p_interval": tuple(t["p_interval"]), "gain_interval": tuple(t["gain_interval"])})
                 for ref, t in c["tests"].items()}
        candidates.append(CandidateResult(c["name"], bool(c["weights_only"]), int(c["repeats"]), float(c["mean"]),
                                          tests, dict(c["rules"]), bool(c["hopeless"])))
    return Decision(Verdict(gate["verdict"]), gate.get("winner"), GateRules(**gate["rules"]), dict(gate["means"]),
                    candidates)


def run_words(run: Any) -> str:
    """What the update run found, in one or two sentences."""
    from lstmops.update.compare import ARM_TITLES, effect_in_words

    if run.collect and run.collect.get("quarantined"):
        return (f"The batch of {run.collect.get('day', run.run_id)} was quarantined, so nothing was trained: "
                f"{run.collect.get('reason') or 'it broke its contract'}.")
    if run.gate is None:
        return f"The update run of {run.run_id} has not reached the comparison yet."
    decision = decision_of(run.gate)
    text = f"The update run of {run.run_id} {VERDICT_WORDS.get(decision.verdict.value, decision.verdict.value)}."
    if decision.winner is not None:
        text += (f" The winner is candidate {decision.winner}, {ARM_TITLES.get(decision.winner, decision.winner)}: "
                 f"it {effect_in_words(run.problem, decision)}.")
    return text


# --- sections -----------------------------------------------------------------------------------


def decision_section(state: Any) -> str:
    """Pending proposals with the exact commands to approve or reject them."""
    out = ['<section id="awaiting"><h2>Awaiting your decision</h2>']
    if not state.pending:
        return out[0] + empty("Nothing awaits a decision: no proposal is pending.") + "</section>"
    for p in state.pending:
        champion = "no model" if p.expected_champion is None else f"v{p.expected_champion}"
        out.append(f"<h3>Proposal #{e(p.id)}: deploy v{e(p.candidate_version)} instead of {e(champion)}</h3>"
                   f"<p>Candidate {e(p.arm or '–')}, {'a weights-only update' if p.weights_only else 'a new model'}. "
                   f"Evidence: {e(p.summary)}. Proposed {e(f'{p.created_at:%Y-%m-%d %H:%M}')} UTC by "
                   f"{e(p.proposed_by)}; it expires {e(f'{p.expires_at:%Y-%m-%d %H:%M}')} UTC.</p>"
                   f"<p>To approve or reject it, run one of:</p><pre><code>"
                   f"lstmops approve {e(state.problem)} {e(p.id)} --reason &quot;...&quot;\n"
                   f"lstmops reject {e(state.problem)} {e(p.id)} --reason &quot;...&quot;</code></pre>"
                   f"<p>Or, when an update flow is paused waiting for it, open the Prefect UI at "
                   f"<code>{e(PREFECT_UI)}</code>, find the paused flow run “{e(FLOW_NAME)}”"
                   + (f" (id <code>{e(p.flow_run_id)}</code>)" if p.flow_run_id else "")
                   + " and press Resume.</p>")
    return "".join(out) + "</section>"


def skill_section(state: Any) -> str:
    """Daily skill of every version with promotions and drift marked, then the latest days as numbers."""
    from lstmops.monitoring.charts import Event, skill_chart
    from lstmops.monitoring.report import day_of

    head = '<section id="skill"><h2>Skill over time</h2>'
    if not state.skill:
        return head + empty("No predictions have been scored yet, so there is no skill over time to show.") \
            + "</section>"
    events = [Event(day_of(r.at), f"v{r.champion} " + ("back (rollback)" if r.action == "rollback" else "promoted"))
              for r in state.ledger]
    drift = [Event(day_of(c["period"]), c.get("kind") or "flagged") for c in state.checks
             if c.get("flagged") and c.get("interval") == "day"]
    chart = skill_chart(state.skill, state.metric, state.higher_is_better, events, drift)
    note = ("<p>Solid lines: what users were served. Dashed: the previous model, run in shadow on the same "
            "requests. Vertical lines: promotions and rollbacks. Shaded days: monitoring flagged drift or skill loss"
            + (f" ({e(', '.join(sorted({d.label for d in drift})))})" if drift else " (none so far)") + ".</p>")
    rows = [[e(r["period"]), f"v{e(r['model_version'])}", e(r["role"]), e(r["n"]), e(num(r.get(state.metric)))]
            for r in state.skill[-10:]]
    return head + f"<figure>{chart}</figure>" + note + table(["day", "version", "role", "n", state.metric], rows) \
        + "</section>"


def run_section(state: Any, run: Any) -> str:
    """The update run: verdict, effect, the arms' scores, each rule passed or failed."""
    from lstmops.monitoring.charts import arms_chart
    from lstmops.monitoring.report import SHORT_TITLES
    from lstmops.update.compare import headline

    out = [f'<section id="run"><h2>What the update run of {e(run.run_id)} found</h2>']
    if run.gate is not None:
        out.append(f'<p><span class="verdict {e(run.gate["verdict"])}">{e(run.gate["verdict"])}</span> '
                   f"{e(run_words(run))}</p><p>{e(headline(run.problem, decision_of(run.gate)))}</p>")
    else:
        out.append(f"<p>{e(run_words(run))}</p>")
    if run.assess is not None:
        out.append(f"<p>Before the comparison, the deployed model’s trend was "
                   f"<strong>{e(run.assess.get('verdict'))}</strong>: {e(run.assess.get('note'))}.</p>")
    scores = run.arm_scores()
    if any(scores.values()):
        winner = (run.gate or {}).get("winner")
        out.append("<h3>Each arm’s score per repeat</h3><figure>"
                   + arms_chart(scores, SHORT_TITLES, state.metric, state.higher_is_better, winner) + "</figure>")
    else:
        out.append(empty("No arm has finished training in this run, so there are no scores to show."))
    if run.gate is not None and run.gate.get("candidates"):
        out.append("<h3>The gate’s rules, per candidate</h3>" + rules_table(run.gate))
    return "".join(out) + "</section>"


def rules_table(gate: Mapping[str, Any]) -> str:
    """Each candidate's numbers, then each rule passed or failed."""
    names = list(dict.fromkeys(rule for c in gate["candidates"] for rule in c["rules"]))
    diverged = gate.get("diverged") or {}
    rows = []
    for c in gate["candidates"]:
        test = c["tests"].get("deployed", {})
        low, high = test.get("gain_interval", (None, None))
        cells = [e(c["name"]) + (" (winner)" if c["name"] == gate.get("winner") else ""),
                 f"{e(c['repeats'])}" + (f" ({e(diverged[c['name']])} diverged)" if diverged.get(c["name"]) else ""),
                 e(num(c["mean"])), f"{e(num(test.get('gain')))} [{e(num(low))}, {e(num(high))}]",
                 e(num(test.get("p_improve")))]
        for rule in names:
            ok = c["rules"].get(rule)
            cells.append("–" if ok is None else f'<span class="{"pass" if ok else "fail"}">'
                                                 f'{"passed" if ok else "failed"}</span>')
        rows.append(cells)
    return table(["candidate", "repeats", "mean", "gain over deployed [interval]", "P(better than deployed)", *names],
                 rows, "rules")


def monitoring_section(state: Any, link: str | None) -> str:
    """The latest check in words, a link to Evidently's own page, and the flagged days."""
    out = ['<section id="monitoring"><h2>Latest monitoring findings</h2>']
    if not state.checks:
        return out[0] + empty(f"Monitoring has not checked {state.problem} yet.") + "</section>"
    last = state.latest_finding()
    out.append(f"<p>{e(monitoring_words(state))}</p><p>Finding: <strong>{e(last.get('kind') or 'none')}</strong>"
               + (" (flagged)" if last.get("flagged") else "") + ".</p>")
    if link:
        out.append(f"<p>{_link(link, 'Evidently’s own page of this check')} (opens beside this report).</p>")
    flagged = [c for c in state.checks if c.get("flagged")][-10:]
    if flagged:
        out.append("<h3>Flagged intervals</h3>" + table(
            ["period", "finding", "in words"], [[e(c["period"]), e(c.get("kind")), e(c.get("words"))]
                                                for c in reversed(flagged)]))
    return "".join(out) + "</section>"


def ledger_section(state: Any) -> str:
    """Every promotion and rollback: who, when, why."""
    head = '<section id="ledger"><h2>Promotion ledger</h2>'
    if not state.ledger:
        return head + empty("No promotion or rollback has been recorded yet.") + "</section>"
    rows = [[e(f"{r.at:%Y-%m-%d %H:%M}"), e(r.action), f"v{e(r.champion)}",
             e("–" if r.replaced is None else f"v{r.replaced}"), e(r.actor), e(r.reason),
             e("–" if r.proposal_id is None else f"#{r.proposal_id}"),
             e((r.evidence or "–").split("; report ")[0])] for r in state.ledger]
    return head + table(["when (UTC)", "action", "now deployed", "replaced", "who", "why", "proposal", "evidence"],
                        rows, "ledger") + "</section>"


def run_body(state: Any, run: Any | None, link: str | None, made_at: str) -> str:
    """The body of a run page (or, with no run, of the problem's current-state page)."""
    title = f"{state.problem}: update run of {run.run_id}" if run is not None else f"{state.problem}: current state"
    summary = [deployed_words(state), skill_words(state), monitoring_words(state), pending_words(state)]
    if rollback_words(state):
        summary.append(rollback_words(state))
    summary.insert(1, run_words(run) if run is not None else "No update run has been made yet.")
    parts = [f'<nav>{_link("index.html", "← all problems")}</nav><h1>{e(title)}</h1>'
             f'<p class="made">Made {e(made_at)} from the registry, the prediction store, the update run’s records '
             f"and monitoring.</p>",
             '<section id="summary"><h2>In short</h2><p class="summary">' + " ".join(e(s) for s in summary) + "</p>"
             "</section>", decision_section(state), skill_section(state)]
    parts.append(run_section(state, run) if run is not None else
                 '<section id="run"><h2>Update runs</h2>' + empty(f"No update run of {state.problem} yet.")
                 + "</section>")
    parts += [monitoring_section(state, link), ledger_section(state)]
    return "\n".join(parts)


def index_body(states: Sequence[Any], verdicts: Mapping[str, Mapping[str, str | None]], present: set[str],
               made_at: str, rehearsal: Mapping[str, Any] | None = None) -> str:
    """Every problem in one line of plain words, with links to its pages, newest first.

    A rehearsal's report (``rehearsal``: its description and decisions) says so at the top
    and ends with the table of every decision it made.
    """
    out = ["<h1>Models and decisions</h1>"]
    if rehearsal:
        out.append(f'<p class="rehearsal"><strong>Rehearsal {e(rehearsal.get("name"))}</strong>: simulated days '
                   f'{e(rehearsal.get("from"))} to {e(rehearsal.get("to"))} (sizes {e(rehearsal.get("sizes"))}, '
                   f'approvals {e(rehearsal.get("approve"))}). Nothing here touched the real models.</p>')
    out += [
           f'<p class="made">Made {e(made_at)}. One section per problem: what is deployed, how well it does, what '
           "monitoring found, and whether a decision awaits you. Each update run has its own page.</p>"]
    for state in states:
        out.append(f'<section id="{e(state.problem)}"><h2>{e(state.problem)}</h2><p>{e(status_line(state))}</p>')
        links = []
        for run_id in state.runs:
            name = f"{state.problem}-{run_id}.html"
            verdict = verdicts.get(state.problem, {}).get(run_id) or "no verdict yet"
            links.append(f"<li>{_link(name, f'update run {run_id}')}: {e(verdict)}</li>" if name in present
                         else f"<li>update run {e(run_id)}: {e(verdict)} (page not built yet)</li>")
        if not state.runs:
            name = f"{state.problem}.html"
            links.append(f"<li>{_link(name, 'current state')} (no update run yet)</li>" if name in present
                         else "<li>no update run yet</li>")
        out.append("<ul>" + "".join(links) + "</ul></section>")
    if rehearsal:
        rows = [[e(r.get("day")), e(r.get("problem")), e(r.get("event")), e(r.get("detail")),
                 e("–" if r.get("champion") is None else f"v{r['champion']}")] for r in rehearsal.get("decisions", [])]
        out.append('<section id="decisions"><h2>Decisions of the rehearsal</h2>'
                   + (table(["day", "problem", "event", "what happened", "deployed after"], rows, "decisions")
                      if rows else empty("No decision was made.")) + "</section>")
    return "\n".join(out)
