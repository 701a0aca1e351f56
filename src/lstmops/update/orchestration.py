"""The one place outside ``flows/`` that talks to Prefect: resume a flow run paused for approval,
and start a local Prefect server (``make serve``, a rehearsal).

An update flow that proposes a candidate pauses (``pause_flow_run(wait_for_input=...)``)
until a person decides. The decision itself is data in the registry database
(:mod:`lstmops.registry.proposals`); resuming the paused run only lets the flow go on at
once. So nothing here may fail a decision: when no Prefect API answers, or the run is no
longer paused (timed out, cancelled, resumed from the UI), :func:`resume_waiting_run`
returns a note, and the flow reads the recorded decision when it resumes or re-runs.

Prefect is imported only when called, so the CLI's ``--help`` and its other commands stay fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

# A decision should not hang on an unreachable server: short client settings unless the user set them.
_QUICK = {"PREFECT_API_REQUEST_TIMEOUT": 10.0, "PREFECT_CLIENT_MAX_RETRIES": 1}


def run_input(decision: dict[str, Any]) -> dict[str, Any]:
    """The input the paused flow's ``RunInput`` expects: ``approve``, ``reason``, ``actor``, ``decided_in``."""
    return {"approve": bool(decision.get("approve")), "reason": str(decision.get("reason") or ""),
            "actor": str(decision.get("actor") or ""), "decided_in": str(decision.get("decided_in") or "cli")}


def resume_waiting_run(flow_run_id: str, decision: dict[str, Any]) -> str:
    """Resume the paused flow run ``flow_run_id`` with ``decision``; returns what happened, in one line.

    Never raises: the decision is already recorded in the database.
    """
    after = "the decision is recorded; the flow reads it when it resumes or re-runs"
    try:
        run_id = UUID(str(flow_run_id))
    except ValueError:
        return f"flow run {flow_run_id!r} is not a Prefect run id; {after}"
    try:
        import prefect.settings
        from prefect.flow_runs import resume_flow_run
    except ImportError as err:
        return f"Prefect is not available ({err}); {after}"
    quick = {getattr(prefect.settings, key): value for key, value in _QUICK.items() if key not in os.environ}
    try:
        with prefect.settings.temporary_settings(updates=quick):
            resume_flow_run(run_id, run_input=run_input(decision))
    except Exception as err:  # noqa: BLE001 - no server, not paused, refused input: all only delay the flow
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return f"could not resume flow run {run_id} ({type(err).__name__}: {detail}); {after}"
    return f"resumed flow run {run_id}, which was waiting for this decision"


def start_server(port: int, home: Path, log: Path, timeout_s: float = 60) -> subprocess.Popen:
    """``prefect server start`` on 127.0.0.1:``port`` with its state in ``home``; returns once ``/api/health`` answers.

    Raises:
        RuntimeError: the server stopped at start or did not answer in time (see ``log``).
    """
    import time
    import urllib.request

    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    with log.open("ab") as out:  # the child keeps its own handle
        server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"prefect server stopped at start; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError(f"prefect server did not answer within {timeout_s:.0f} s; see {log}")
