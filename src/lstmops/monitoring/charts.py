"""The stakeholder report's charts, drawn with matplotlib as inline SVG.

Inline SVG keeps each report page one self-contained file that opens offline (no image
files beside it, no scripts, no network), stays sharp when zoomed or printed, and keeps
its text as text (``svg.fonttype: none``). matplotlib loads only when a chart is drawn,
on the ``Agg`` backend, so importing the report module stays light.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

SERVED_STYLE, SHADOW_STYLE = "-", "--"
DRIFT_COLOUR, EVENT_COLOUR, WINNER_COLOUR, ARM_COLOUR = "#f4a261", "#2a9d8f", "#e76f51", "#8fa9c4"


@dataclass(frozen=True)
class Event:
    """A dated mark on the skill chart: a promotion or rollback, or a day monitoring flagged."""

    day: date
    label: str


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "lstmops-report", "font.size": 9,
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _svg(fig: Any, label: str, name: str) -> str:
    """The figure as an ``<svg class="chart">`` element: no XML prologue, DOCTYPE or metadata (which name URLs)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    _pyplot().close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    from html import escape

    return text.replace("<svg ", f'<svg class="chart" id="{escape(name)}" role="img" aria-label="{escape(label)}" ',
                        1)


def skill_chart(rows: Sequence[Mapping[str, Any]], metric: str, higher_is_better: bool, events: Sequence[Event],
                drift_days: Sequence[Event], name: str = "skill-chart") -> str:
    """Daily skill of every version, served (solid) and in shadow (dashed), with promotions and drift marked.

    Args:
        rows: ``store.skill(problem, "day")`` rows: ``period``, ``model_version``, ``role``, ``n``, metrics.
        events: promotions and rollbacks (vertical lines); drift_days: days monitoring flagged (shaded).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    series: dict[tuple[int, str], list[tuple[datetime, float]]] = {}
    for row in rows:
        value = row.get(metric)
        if value is None:
            continue
        key = (int(row["model_version"]), str(row["role"]))
        series.setdefault(key, []).append((datetime.fromisoformat(str(row["period"])), float(value)))
    colours = plt.get_cmap("tab10")
    for (version, role), points in sorted(series.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], SHADOW_STYLE if role == "shadow" else SERVED_STYLE,
                marker="o", markersize=3, color=colours(version % 10),
                label=f"v{version} " + ("in shadow (previous)" if role == "shadow" else "served (deployed)"))
    for i, mark in enumerate(drift_days):
        start = datetime.combine(mark.day, datetime.min.time())
        ax.axvspan(start, start.replace(hour=23, minute=59), color=DRIFT_COLOUR, alpha=0.35,
                   label="monitoring flagged" if i == 0 else None)
    for mark in events:
        when = datetime.combine(mark.day, datetime.min.time())
        ax.axvline(when, color=EVENT_COLOUR, linewidth=1.2)
        ax.annotate(mark.label, (when, 1.0), xycoords=("data", "axes fraction"), rotation=90, va="top", ha="right",
                    fontsize=7, color=EVENT_COLOUR)
    ax.set_ylabel(f"{metric} ({'higher' if higher_is_better else 'lower'} is better)")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    return _svg(fig, f"{metric} per day of each model version", name)


def arms_chart(scores: Mapping[str, Sequence[float]], titles: Mapping[str, str], metric: str,
               higher_is_better: bool, winner: str | None, name: str = "arms-chart") -> str:
    """Box plots of each arm's score per repeat (the deployed model is one model: one value, a line).

    Args:
        scores: arm name -> score of each finished repeat, in display order; an empty list shows "(diverged)".
        titles: arm name -> its short label on the axis.
    """
    plt = _pyplot()
    names = list(scores)
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(names) + 1.2))
    data = [list(scores[n]) or [float("nan")] for n in names]
    boxes = ax.boxplot(data, orientation="horizontal", patch_artist=True, widths=0.55, showmeans=True,
                       medianprops={"color": "black"},
                       meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black",
                                  "markersize": 4})
    for box, arm in zip(boxes["boxes"], names):
        box.set_facecolor(WINNER_COLOUR if arm == winner else ARM_COLOUR)
    for i, values in enumerate(data, start=1):
        ax.scatter(values, [i] * len(values), s=9, color="black", alpha=0.5, zorder=3)
    ax.set_yticks(range(1, len(names) + 1),
                  [titles.get(n, n) + ("" if scores[n] else " (diverged)") for n in names])
    ax.invert_yaxis()
    ax.set_xlabel(f"{metric} per repeat ({'higher' if higher_is_better else 'lower'} is better)")
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig, f"{metric} of each arm's repeats", name)
