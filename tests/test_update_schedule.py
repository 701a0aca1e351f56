"""The scheduled deployments on a real Prefect server: one per problem, on the cron from params.yaml."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lstmops import paths
from lstmops.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

pytestmark = pytest.mark.flow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_deployments_follow_params():
    from flows.serve import deployments

    settings = load_settings(paths.params_file(ROOT))
    daily, *updates = deployments()
    assert [d.name for d in updates] == list(settings.problems)
    assert all(d.schedules[0].schedule.cron == settings.update.schedule for d in updates)
    assert all(d.parameters == {"problem": d.name} for d in updates)
    assert daily.name == "daily" and daily.schedules[0].schedule.cron == settings.monitoring.schedule


def _deployments(api: str) -> list[dict]:
    """The server's deployments, read over its REST API (as the UI does)."""
    request = urllib.request.Request(f"{api}/deployments/filter", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def test_serve_registers_every_deployment_on_a_real_server(tmp_path, monkeypatch):
    from flows.serve import start_server

    port = _free_port()
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    server = start_server(port, timeout_s=120)
    api = f"http://127.0.0.1:{port}/api"
    env = os.environ | {"PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "client-home")}
    serving = subprocess.Popen([sys.executable, str(ROOT / "flows" / "serve.py")], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    settings = load_settings(paths.params_file(ROOT))
    try:
        found: list[dict] = []
        deadline = time.monotonic() + 120
        expected = {*settings.problems, "daily"}
        while time.monotonic() < deadline and {d["name"] for d in found} != expected:
            time.sleep(1)
            found = _deployments(api)
        assert {d["name"] for d in found} == expected, found
        for deployment in found:
            if deployment["name"] == "daily":  # the monitoring flow, which starts the update deployments
                assert [s["schedule"]["cron"] for s in deployment["schedules"]] == [settings.monitoring.schedule]
                continue
            assert [s["schedule"]["cron"] for s in deployment["schedules"]] == [settings.update.schedule]
            assert deployment["parameters"] == {"problem": deployment["name"]}
    finally:
        serving.terminate()
        serving.wait(timeout=30)
        server.terminate()
        server.wait(timeout=30)
