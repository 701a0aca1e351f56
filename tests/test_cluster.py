"""Past one machine: the update flow with its trainings on Dask worker processes, the registry
and store on PostgreSQL, the model files and the DVC remote on S3-compatible storage.

Everything runs on 127.0.0.1 and is started here: a moto S3 server (a thread of this
process), a throw-away PostgreSQL server (``pg_url`` of test_registry.py), and a
``distributed.LocalCluster`` of two worker processes that the flow reaches by its
scheduler address, as it would a remote cluster. The workers get their own scratch
folder, and while they train, the flow's run data and registry folder are moved out of
the way: the trainings cannot have read this process's disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from test_registry import _fresh_pg, pg_url  # noqa: F401 - pg_url is a fixture
from test_update_flow import TINY, _champion_and_old_data, _git
from tiny_bundles import distinct_bundles

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS, DVC_BUCKET, DAY = "lstmops-models", "lstmops-dvc", "2027-02-01"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _set_env(values: dict[str, str | None]) -> dict[str, str | None]:
    """Set (or, for None, remove) environment variables; returns the old values."""
    old = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    return old


def _fresh_clients() -> None:
    """Forget cached boto3 clients (they keep the endpoint they were made with)."""
    from lstmops.registry import objects

    objects._clients.clear()


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on a free 127.0.0.1 port, with the two buckets; boto3 finds it by AWS_ENDPOINT_URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    old = _set_env({**AWS, "AWS_ENDPOINT_URL": endpoint})
    _fresh_clients()
    import boto3

    client = boto3.client("s3")
    for bucket in (MODELS, DVC_BUCKET):
        client.create_bucket(Bucket=bucket)
    yield {"endpoint": endpoint, "client": client}
    _fresh_clients()
    _set_env(old)
    server.stop()


def _keys(client, bucket: str, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


# --- the flow on the cluster ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(s3, tmp_path_factory):
    """Two Dask worker processes (one thread each) with their own scratch folder."""
    from distributed import Client, LocalCluster

    scratch = tmp_path_factory.mktemp("worker-scratch")
    old = _set_env({"LSTMOPS_SCRATCH": str(scratch)})  # the workers' environment is copied at their start
    try:
        local = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                             host="127.0.0.1")
    finally:
        _set_env(old)
    client = Client(local)
    yield {"address": local.scheduler_address, "client": client, "scratch": scratch,
           "pids": set(client.run(os.getpid).values())}
    client.close()
    local.close()


@pytest.fixture(scope="module")
def world(s3, cluster, pg_url, tmp_path_factory):  # noqa: F811 - pg_url is the imported fixture
    """A git + DVC repository whose remote is on S3, a registry on PostgreSQL with its files on S3, a champion."""
    from prefect.testing.utilities import prefect_test_harness

    from lstmops.registry import Registry

    root = tmp_path_factory.mktemp("cluster")
    params = json.loads(json.dumps(TINY))
    params["update"] |= {"runner": "dask", "dask_address": cluster["address"], "workers": 2}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "t@example.org")
    _git(root, "config", "user.name", "test")
    dvc = [str(Path(sys.executable).parent / "dvc")]
    for args in (["init", "-q"], ["remote", "add", "-d", "storage", f"s3://{DVC_BUCKET}/store"],
                 ["remote", "modify", "storage", "endpointurl", s3["endpoint"]]):
        subprocess.run([*dvc, *args], cwd=root, check=True)
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "init")
    _champion_and_old_data(root)

    db = _fresh_pg(pg_url, "cluster")
    env = {"LSTMOPS_ROOT": str(root), "LSTMOPS_DB_URL": db, "LSTMOPS_MODEL_STORE": f"s3://{MODELS}/registry",
           "DVC_NO_ANALYTICS": "1", "GX_ANALYTICS_ENABLED": "false"}
    old = _set_env(env)
    registry = Registry(folder=root / "registry")
    registry.register("echo", root / "bundle")
    registry.promote("echo", 1, reason="first model", expect_champion=None)
    try:
        with prefect_test_harness(server_startup_timeout=120):
            yield {"root": root, "registry": registry, "db": db}
    finally:
        _set_env(old)


@pytest.mark.flow
def test_the_update_flow_trains_on_dask_workers_without_the_flows_disk(world, cluster, s3, tmp_path, monkeypatch):
    import flows.update as flow_module
    from lstmops.modeling.bundle import load_model
    from lstmops.registry import Registry
    from lstmops.registry.objects import bundle_digest
    from lstmops.update import shipping

    root, client = world["root"], s3["client"]
    run_dir = root / "updates" / "echo" / DAY
    hidden = {run_dir / "data": root / ".hidden-data", root / "registry": root / ".hidden-registry"}
    seen: dict = {}
    publish, develop = shipping.publish, flow_module.develop

    def publish_then_hide(data, store):  # once shipped, the flow's copy is out of the workers' reach
        shipped = publish(data, store)
        seen["shipped"] = shipped
        for place, away in hidden.items():
            place.rename(away)
        return shipped

    def develop_hidden(run, data, repeats):
        try:
            develop(run, data, repeats)
            seen["trained_while_hidden"] = not any(place.exists() for place in hidden)
        finally:
            for place, away in hidden.items():
                if away.exists():
                    away.rename(place)

    monkeypatch.setattr(shipping, "publish", publish_then_hide)
    monkeypatch.setattr(flow_module, "develop", develop_hidden)
    outcome = flow_module.update("echo", DAY, wait_for_approval=False)

    assert outcome["verdict"] == "PROMOTE", outcome
    proposal = outcome["proposal"]
    assert proposal["status"] == "pending" and proposal["candidate_version"] == 2
    # the jobs named no path of this machine, and the trainings ran while the run's data was gone
    assert seen["shipped"].folder == f"s3://{MODELS}/registry/runs/echo/{DAY}/data"
    assert seen["trained_while_hidden"] is True
    results = [json.loads(p.read_text()) for p in sorted((run_dir / "results").glob("*.json"))]
    assert len(results) == 10  # 5 arms x 2 repeats, saved by this process from what the workers returned
    pids = {int(r["worker"].rsplit(":", 1)[1]) for r in results}
    assert pids <= cluster["pids"] and os.getpid() not in pids, (pids, cluster["pids"])
    assert list(cluster["scratch"].glob(f"runs/echo/{DAY}/*/data/manifest.json"))  # the workers' own copy
    assert all((run_dir / "arms" / r["arm"] / f"r{r['repeat']}.weights.h5").is_file() for r in results)

    # the registry (PostgreSQL) knows the candidate, the bucket holds its files ...
    candidate = world["registry"].resolve("echo", 2)
    digest = bundle_digest(candidate.checksums)
    stored = _keys(client, MODELS, f"registry/models/echo/{digest}/")
    assert sorted(Path(k).name for k in stored) == sorted([*candidate.checksums, "checksums.json"])
    # ... and a machine with an empty registry folder loads it from there, checked
    elsewhere = Registry(world["db"], tmp_path / "empty-registry", store=f"s3://{MODELS}/registry")
    fetched = elsewhere.resolve("echo", "latest")
    assert fetched.version == 2 and fetched.folder == tmp_path / "empty-registry" / "echo" / "v2"
    elsewhere.verify(fetched)
    x = np.eye(10, dtype="float32")[np.random.default_rng(0).integers(0, 10, (4, 5))]
    assert load_model(fetched.folder).predict(x, verbose=0).shape == (4, 10)

    # the batch went to the DVC remote on S3, and a fresh clone pulls it back
    collected = json.loads((run_dir / "collect.json").read_text())
    assert collected["pushed"] is True, collected
    dvc_file = root / "data" / "batches" / "echo" / f"{DAY}.dvc"
    md5 = yaml.safe_load(dvc_file.read_text())["outs"][0]["md5"]
    assert f"store/files/md5/{md5[:2]}/{md5[2:]}" in _keys(client, DVC_BUCKET, "store/")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    dvc = str(Path(sys.executable).parent / "dvc")
    pulled = subprocess.run([dvc, "pull", "-q", str(dvc_file.relative_to(root))], cwd=clone, capture_output=True,
                            text=True)
    assert pulled.returncode == 0, pulled.stderr
    batch = Path("data") / "batches" / "echo" / DAY
    for name in ("train.parquet", "eval.parquet"):
        assert (clone / batch / name).read_bytes() == (root / batch / name).read_bytes()


# --- failures: one line, nothing stored lost ------------------------------------------------------


def _folders(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_a_missing_bucket_stops_registration_in_one_line_and_changes_nothing(s3, tmp_path):
    from lstmops.errors import RegistryError
    from lstmops.registry import Registry

    bundles = distinct_bundles(tmp_path)
    reg = Registry(f"sqlite:///{tmp_path / 'reg.db'}", tmp_path / "registry", store=f"s3://{MODELS}/a")
    reg.register("echo", bundles[0])
    before = _folders(reg.folder)
    broken = Registry(reg.url, reg.folder, store="s3://no-such-bucket/models")
    with pytest.raises(RegistryError, match="bucket 'no-such-bucket' does not exist") as err:
        broken.register("echo", bundles[1])
    assert "\n" not in str(err.value)
    assert [v.version for v in reg.versions("echo")] == [1] and _folders(reg.folder) == before
    reg.verify(reg.resolve("echo", 1))


def test_an_unreachable_store_is_one_line_and_changes_nothing(s3, tmp_path, monkeypatch):
    from lstmops.errors import RegistryError
    from lstmops.registry import Registry

    bundles = distinct_bundles(tmp_path)
    reg = Registry(f"sqlite:///{tmp_path / 'reg.db'}", tmp_path / "registry", store=f"s3://{MODELS}/b")
    reg.register("echo", bundles[0])
    before = _folders(reg.folder)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    _fresh_clients()
    try:
        with pytest.raises(RegistryError, match=r"model store s3://lstmops-models/b: cannot reach it") as err:
            reg.register("echo", bundles[1])
        assert "\n" not in str(err.value)
        with pytest.raises(RegistryError, match="cannot reach it"):  # a machine without the files cannot load
            Registry(reg.url, tmp_path / "other", store=f"s3://{MODELS}/b").resolve("echo", 1)
    finally:
        _fresh_clients()
    assert [v.version for v in reg.versions("echo")] == [1] and _folders(reg.folder) == before
    assert _folders(tmp_path / "other") in ([], ["echo"])  # no partial version left there


def test_no_credentials_is_one_line(s3, tmp_path, monkeypatch):
    from lstmops.errors import RegistryError
    from lstmops.registry import Registry

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    _fresh_clients()
    reg = Registry(f"sqlite:///{tmp_path / 'reg.db'}", tmp_path / "registry", store=f"s3://{MODELS}/c")
    try:
        with pytest.raises(RegistryError, match="no credentials .*AWS_ACCESS_KEY_ID"):
            reg.register("echo", distinct_bundles(tmp_path)[0])
    finally:
        _fresh_clients()
    assert reg.problems() == [] and not list(reg.folder.glob("*/v*"))


@pytest.mark.parametrize("damage", ["tampered", "missing"])
def test_a_damaged_object_is_refused_and_nothing_is_kept(s3, tmp_path, damage):
    from lstmops.errors import BundleError, RegistryError
    from lstmops.modeling.bundle import WEIGHTS
    from lstmops.registry import Registry
    from lstmops.registry.objects import bundle_digest

    bundles = distinct_bundles(tmp_path)
    reg = Registry(f"sqlite:///{tmp_path / 'reg.db'}", tmp_path / "registry", store=f"s3://{MODELS}/{damage}")
    mv = reg.register("echo", bundles[0]).version
    key = f"{damage}/models/echo/{bundle_digest(mv.checksums)}/{WEIGHTS}"
    if damage == "tampered":
        s3["client"].put_object(Bucket=MODELS, Key=key, Body=b"not the weights")
    else:
        s3["client"].delete_object(Bucket=MODELS, Key=key)
    other = Registry(reg.url, tmp_path / "other", store=None)
    with pytest.raises(BundleError, match="is missing from"):  # no store: the plain local error
        other.verify(other.resolve("echo", 1))
    other = Registry(reg.url, tmp_path / "other", store=f"s3://{MODELS}/{damage}")
    expected = ((BundleError, f"{WEIGHTS} at s3://.* does not match the checksum recorded at registration")
                if damage == "tampered" else (RegistryError, f"s3://{MODELS}/{key} is missing"))
    with pytest.raises(expected[0], match=expected[1]) as err:
        other.resolve("echo", 1)
    assert "\n" not in str(err.value)
    assert _folders(tmp_path / "other") == ["echo"]  # the staging folder is gone, no v1
    reg.verify(reg.resolve("echo", 1))  # the registering machine's copy is intact


def test_the_cli_loads_a_version_from_the_store_on_a_machine_without_its_files(s3, tmp_path, monkeypatch):
    import shutil

    from typer.testing import CliRunner

    from lstmops.cli import app
    from lstmops.registry import Registry

    url, store = f"sqlite:///{tmp_path / 'reg.db'}", f"s3://{MODELS}/cli"
    Registry(url, tmp_path / "first-machine", store=store).register("echo", distinct_bundles(tmp_path)[0])
    shutil.rmtree(tmp_path / "first-machine")  # that machine is gone; the database and the bucket remain
    monkeypatch.setenv("LSTMOPS_ROOT", str(tmp_path / "second"))  # its registry folder: second/registry
    monkeypatch.delenv("LSTMOPS_MODEL_STORE", raising=False)
    show = ["--db", url, "--model-store", "s3://no-such-bucket/x", "models", "show", "echo", "1"]
    bad = CliRunner().invoke(app, show, prog_name="lstmops")
    assert bad.exit_code == 2, bad.output
    assert "bucket 'no-such-bucket' does not exist" in bad.output and bad.output.strip().count("\n") == 0
    assert not (tmp_path / "second" / "registry" / "echo" / "v1").exists()
    show[3] = store
    good = CliRunner().invoke(app, show, prog_name="lstmops")
    assert good.exit_code == 0 and "integrity: ok" in good.output, good.output
    assert (tmp_path / "second" / "registry" / "echo" / "v1" / "model.weights.h5").is_file()


def test_a_worker_without_the_runs_data_says_what_to_set(tmp_path):
    from lstmops.errors import DataError
    from lstmops.update.candidates import UpdateData
    from lstmops.update.shipping import materialise

    data = UpdateData("echo", DAY, str(tmp_path / "nowhere" / "data"), 1, (1, 1), (1, 1), 1, False, 0)
    with pytest.raises(DataError, match="not on this worker's disk .*LSTMOPS_MODEL_STORE"):
        materialise(data)


def test_shipped_run_data_is_checked_on_the_worker(s3, tmp_path, monkeypatch):
    from lstmops.errors import DataError
    from lstmops.registry.objects import ObjectStore
    from lstmops.update.candidates import UpdateData
    from lstmops.update.shipping import materialise, publish

    folder = tmp_path / "flow" / "updates" / "echo" / "d1" / "data"
    (folder / "champion").mkdir(parents=True)
    np.save(folder / "X_train.npy", np.arange(12.0).reshape(3, 4))
    (folder / "champion" / "model.json").write_text("{}")
    data = UpdateData("echo", "d1", str(folder), 1, (2, 1), (1, 0), 1, False, 0)
    shipped = publish(data, ObjectStore(MODELS, "ship"))
    assert shipped.folder == f"s3://{MODELS}/ship/runs/echo/d1/data" and str(tmp_path) not in repr(shipped)
    monkeypatch.setenv("LSTMOPS_SCRATCH", str(tmp_path / "worker"))
    here = materialise(shipped)
    assert Path(here.folder).is_relative_to(tmp_path / "worker")
    assert np.load(Path(here.folder) / "X_train.npy").tolist() == np.arange(12.0).reshape(3, 4).tolist()
    s3["client"].put_object(Bucket=MODELS, Key="ship/runs/echo/d1/data/X_train.npy", Body=b"changed")
    monkeypatch.setenv("LSTMOPS_SCRATCH", str(tmp_path / "another-worker"))
    with pytest.raises(DataError, match="X_train.npy does not match the run's manifest"):
        materialise(shipped)
    assert not list((tmp_path / "another-worker").rglob("*.npy"))  # nothing half-downloaded is kept


def test_without_a_model_store_registration_is_as_before(tmp_path, monkeypatch):
    from lstmops.registry import Registry
    from lstmops.registry import storage

    monkeypatch.delenv("LSTMOPS_MODEL_STORE", raising=False)
    bundles = distinct_bundles(tmp_path)
    reg = Registry(f"sqlite:///{tmp_path / 'reg.db'}", tmp_path / "registry")
    assert reg.store is None
    mv = reg.register("echo", bundles[0]).version
    assert sorted(os.listdir(mv.folder)) == sorted([*os.listdir(bundles[0]), storage.OWNER_FILE])
