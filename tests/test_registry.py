"""Model registry: versions, idempotence, aliases and ledger, crash safety, racing promoters,
tamper detection, safe loading, the register stage, and the same code on PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from lstmops.registry import storage
from lstmops.registry import versions as registry_module
from lstmops.modeling.bundle import WEIGHTS, BundleError, sha256
from lstmops.registry.versions import NoModelError, PromotionConflict, Registry, RegistryError, parse_ref
from tiny_bundles import bundle_copy, distinct_bundles, fit_table, tiny_bundles

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def reg(tmp_path) -> Registry:
    return Registry(f"sqlite:///{tmp_path / 'reg.db'}", tmp_path / "registry")


@pytest.fixture
def bundles(tmp_path) -> list[Path]:
    """Three echo bundles that differ (their metadata differs, hence their checksums)."""
    return distinct_bundles(tmp_path)


@pytest.fixture(autouse=True)
def _no_crash_hook():
    yield
    registry_module.crash_hook = None


def _crash_at(step: str):
    def hook(name: str) -> None:
        if name == step:
            raise KeyboardInterrupt(f"simulated crash at {step}")
    return hook


def _state(reg: Registry, problem: str = "echo") -> tuple:
    return ([v.version for v in reg.versions(problem)], reg.aliases(problem), len(reg.ledger(problem)))


def test_register_copies_verifies_and_is_idempotent(reg, bundles):
    first = reg.register("echo", bundles[0], actor="tester")
    assert first.created and first.version.version == 1
    mv = first.version
    assert mv.folder == reg.folder / "echo" / "v1" and sorted(os.listdir(mv.folder)) == sorted(
        [*os.listdir(bundles[0]), storage.OWNER_FILE])
    assert mv.checksums == json.loads((bundles[0] / "checksums.json").read_text())
    assert mv.architecture == "vanilla" and mv.registered_by == "tester" and mv.metadata["variant"] == 0
    again = reg.register("echo", bundles[0])
    assert not again.created and again.version.version == 1
    assert reg.register("echo", bundles[1]).version.version == 2
    assert [v.version for v in reg.versions("echo")] == [1, 2] and reg.problems() == ["echo"]
    assert not list((reg.folder / "echo").glob(".incoming-*"))


def test_refs_resolve_and_fail_in_one_line(reg, bundles):
    with pytest.raises(NoModelError, match="no registered model for echo"):
        reg.resolve("echo")
    for b in bundles[:2]:
        reg.register("echo", b)
    with pytest.raises(NoModelError, match="echo has no champion model"):
        reg.resolve("echo", "champion")
    reg.promote("echo", 1, reason="first")
    assert reg.resolve("echo").version == 1 and reg.resolve("echo", "latest").version == 2
    assert reg.resolve("echo", "v2").version == reg.resolve("echo", 2).version == 2
    with pytest.raises(NoModelError, match="echo has no version 9 \\(versions: 1, 2\\)"):
        reg.resolve("echo", 9)
    with pytest.raises(RegistryError, match="neither champion"):
        parse_ref("best")


def test_promote_and_rollback_keep_aliases_and_ledger(reg, bundles):
    for b in bundles:
        reg.register("echo", b)
    first = reg.promote("echo", 1, reason="initial model", actor="ann", evidence="metrics/echo/final.json")
    assert (first.action, first.champion, first.replaced, first.previous) == ("initial", 1, None, None)
    assert first.actor == "ann" and first.evidence == "metrics/echo/final.json" and first.reason == "initial model"
    second = reg.promote("echo", 3, reason="better on recent data", actor="bob", evidence="https://x/report")
    assert (second.action, second.champion, second.replaced, second.previous) == ("promote", 3, 1, 1)
    assert reg.aliases("echo") == {"champion": 3, "previous": 1}
    assert [v.aliases for v in reg.versions("echo")] == [("previous",), (), ("champion",)]
    back = reg.rollback("echo", reason="v3 degrades", actor="cy")
    assert (back.action, back.champion, back.replaced, back.previous) == ("rollback", 1, 3, 3)
    assert reg.aliases("echo") == {"champion": 1, "previous": 3}
    assert [p.id for p in reg.ledger("echo")] == [back.id, second.id, first.id]
    assert [p.revision for p in reg.ledger("echo")] == [3, 2, 1]
    with pytest.raises(RegistryError, match="already the champion"):
        reg.promote("echo", 1, reason="again")
    with pytest.raises(RegistryError, match="needs a reason"):
        reg.promote("echo", 2, reason=" ")
    with pytest.raises(NoModelError, match="no version 7"):
        reg.promote("echo", 7, reason="x")
    assert _state(reg)[1:] == ({"champion": 1, "previous": 3}, 3)


def test_rollback_needs_a_previous_model(reg, bundles):
    reg.register("echo", bundles[0])
    reg.promote("echo", 1, reason="first")
    with pytest.raises(NoModelError, match="no previous model"):
        reg.rollback("echo", reason="oops")


@pytest.mark.parametrize("step", ["staged", "moved", "recorded"])
def test_crash_during_registration_leaves_a_consistent_registry(reg, bundles, step):
    reg.register("echo", bundles[0])
    registry_module.crash_hook = _crash_at(step)
    with pytest.raises(KeyboardInterrupt):
        reg.register("echo", bundles[1])
    registry_module.crash_hook = None
    assert _state(reg) == ([1], {}, 0)  # no version 2 recorded
    assert reg.resolve("echo", "latest").version == 1
    done = reg.register("echo", bundles[1])  # the same number is reused, the orphan replaced
    assert done.version.version == 2 and sha256(done.version.folder / "metadata.json") == sha256(
        bundles[1] / "metadata.json")
    reg.verify(done.version)
    assert sorted(p.name for p in (reg.folder / "echo").iterdir()) == ["v1", "v2"]


@pytest.mark.parametrize("step", ["champion-set", "ledger-written"])
@pytest.mark.parametrize("action", ["promote", "rollback"])
def test_crash_during_promotion_changes_nothing(reg, bundles, step, action):
    for b in bundles[:2]:
        reg.register("echo", b)
    reg.promote("echo", 1, reason="first")
    reg.promote("echo", 2, reason="second")
    before = _state(reg)
    registry_module.crash_hook = _crash_at(step)
    with pytest.raises(KeyboardInterrupt):
        if action == "promote":
            reg.promote("echo", 1, reason="back to one")
        else:
            reg.rollback("echo", reason="back to one")
    registry_module.crash_hook = None
    assert _state(reg) == before == ([1, 2], {"champion": 2, "previous": 1}, 2)


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` but the database's own, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith("lstmops.db")}


def _fresh_pg(pg_url: str, name: str) -> str:
    from sqlalchemy import create_engine, text

    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return pg_url.replace("/postgres?", f"/{name}?")


@pytest.mark.parametrize("legacy", [False, True], ids=["owned", "made-before-ownership"])
@pytest.mark.parametrize("other", ["sqlite", "postgresql"])
def test_another_database_never_touches_a_registrys_folders(tmp_path, bundles, monkeypatch, request, other, legacy):
    # The bug of issue #7: a second database pointed at a registry folder took its v1 for an orphan.
    monkeypatch.delenv("LSTMOPS_DB_URL", raising=False)
    folder = tmp_path / "registry"
    default = Registry(folder=folder)  # <folder>/lstmops.db
    default.register("echo", bundles[0])
    default.register("addition", bundles[1])
    default.promote("echo", 1, reason="first")
    if legacy:  # folders written before registries recorded their owner
        for path in folder.glob("*/v*/" + storage.OWNER_FILE):
            path.unlink()
    before = _files(folder)
    url = (f"sqlite:///{tmp_path / 'other.db'}" if other == "sqlite"
           else _fresh_pg(request.getfixturevalue("pg_url"), f"other_{int(legacy)}"))
    intruder = Registry(url, folder)
    for problem in ("echo", "rectangles"):
        with pytest.raises(RegistryError, match=f"registry folder {folder} holds model versions this database "
                                                "does not own .*nothing was changed.*--db"):
            intruder.register(problem, bundles[2])
    assert _files(folder) == before  # byte for byte, and no new folder (rectangles/, staging)
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("lstmops.db")) == ["addition", "echo"]
    assert intruder.problems() == []
    for mv in default.versions("echo") + default.versions("addition"):
        default.verify(mv)
    assert default.register("echo", bundles[2]).version.version == 2  # the owner itself carries on


def test_orphans_and_staging_are_removed_only_when_ours(reg, bundles):
    reg.register("echo", bundles[0])
    ours = reg.versions("echo")[0].folder.joinpath(storage.OWNER_FILE).read_text()
    echo = reg.folder / "echo"
    old = time.time() - storage.STALE_STAGING_S - 10
    for name, owner, mtime in [(".incoming-ours-old", ours, old), (".incoming-ours-new", ours, None),
                               (".incoming-other-old", "someone-else", old), (".incoming-none-old", None, old),
                               ("v5", ours, None)]:
        (echo / name).mkdir()
        if owner:
            (echo / name / storage.OWNER_FILE).write_text(owner)
        if mtime:
            os.utime(echo / name, (mtime, mtime))
    done = reg.register("echo", bundles[1])
    assert done.removed_orphans == [".incoming-ours-old", "v5"] and done.version.version == 2
    assert sorted(p.name for p in echo.iterdir()) == [".incoming-none-old", ".incoming-other-old",
                                                      ".incoming-ours-new", "v1", "v2"]
    (echo / "v3").mkdir()  # a version folder nobody can prove is ours: refuse, delete nothing
    with pytest.raises(RegistryError, match=r"does not own \(echo/v3\)"):
        reg.register("echo", bundles[2])
    assert (echo / "v3").is_dir() and [v.version for v in reg.versions("echo")] == [1, 2]


def test_version_numbers_never_reuse_a_folder_on_disk(reg, bundles, monkeypatch):
    reg.register("echo", bundles[0])
    orphan = reg.folder / "echo" / "v2"  # ours, but it could not be removed (e.g. a file still open)
    shutil.copytree(reg.versions("echo")[0].folder, orphan)
    monkeypatch.setattr(storage, "remove_orphans", lambda *_args: [])
    before = _files(orphan)
    done = reg.register("echo", bundles[1])
    assert done.version.version == 3 and _files(orphan) == before
    reg.verify(done.version)
    with pytest.raises(RegistryError, match="appeared while registering"):
        storage.place(orphan, 3)


def test_repeating_a_rollback_with_the_same_expectation_conflicts(reg, bundles):
    for b in bundles[:2]:
        reg.register("echo", b)
    reg.promote("echo", 1, reason="first")
    reg.promote("echo", 2, reason="second", expect_champion=1)
    reg.rollback("echo", reason="v2 degrades", expect_champion=2)
    with pytest.raises(PromotionConflict, match="echo: the champion is v1, not v2 as expected.*nothing was changed"):
        reg.rollback("echo", reason="v2 degrades", expect_champion=2)  # a double click, a retried request
    assert reg.aliases("echo") == {"champion": 1, "previous": 2} and len(reg.ledger("echo")) == 3
    with pytest.raises(PromotionConflict, match="champion is v1, not v2"):
        reg.promote("echo", 2, reason="again", expect_champion=2)


_KILL_SCRIPT = """
import os, sys
from pathlib import Path
from lstmops.registry import versions as r
step, action = sys.argv[1], sys.argv[2]
r.crash_hook = lambda name: os._exit(17) if name == step else None
reg = r.Registry(sys.argv[3], Path(sys.argv[4]))
if action == "register":
    reg.register("echo", Path(sys.argv[5]))
else:
    reg.promote("echo", 2, reason="killed half-way")
"""


@pytest.mark.parametrize("step,action", [("moved", "register"), ("ledger-written", "promote")])
def test_killed_process_leaves_a_consistent_registry(reg, bundles, step, action):
    reg.register("echo", bundles[0])
    reg.promote("echo", 1, reason="first")
    if action == "promote":
        reg.register("echo", bundles[1])
    before = _state(reg)
    run = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, step, action, reg.url, str(reg.folder),
                          str(bundles[1])], capture_output=True, text=True, timeout=120)
    assert run.returncode == 17, run.stderr
    assert _state(reg) == before
    if action == "register":  # the orphan folder is ignored, then cleaned by the next registration
        assert (reg.folder / "echo" / "v2").is_dir() and reg.resolve("echo", "latest").version == 1
        done = reg.register("echo", bundles[2])
        assert done.version.version == 2 and done.removed_orphans == ["v2"]
        assert done.version.metadata["variant"] == 2
    else:
        reg.promote("echo", 2, reason="now for real")
        assert reg.aliases("echo") == {"champion": 2, "previous": 1}


def _race(reg: Registry, versions: list[int], expect: object, hold: float = 0.4) -> list:
    """Promote ``versions`` from parallel threads; the first holds the lock ``hold`` s mid-transaction."""
    results: list = [None] * len(versions)

    def hook(name: str) -> None:
        if name == "champion-set" and threading.current_thread().name == "p0":
            time.sleep(hold)

    registry_module.crash_hook = hook

    def work(i: int) -> None:
        other = Registry(reg.url, reg.folder)  # its own connections, as a second process would have
        kwargs = {} if expect is None else {"expect_champion": expect}
        try:
            results[i] = other.promote("echo", versions[i], reason=f"promoter {i}", **kwargs)
        except RegistryError as err:
            results[i] = err

    threads = [threading.Thread(target=work, args=(i,), name=f"p{i}") for i in range(len(versions))]
    threads[0].start()
    time.sleep(0.1)
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_two_promoters_with_expectations_one_fails_cleanly(reg, bundles):
    for b in bundles:
        reg.register("echo", b)
    reg.promote("echo", 1, reason="first")
    won, lost = _race(reg, [2, 3], expect=1)
    assert won.champion == 2 and isinstance(lost, PromotionConflict) and "champion is v2, not v1" in str(lost)
    assert reg.aliases("echo") == {"champion": 2, "previous": 1}
    assert len(reg.ledger("echo")) == 2


def test_two_promoters_without_expectations_serialise(reg, bundles):
    for b in bundles:
        reg.register("echo", b)
    reg.promote("echo", 1, reason="first")
    first, second = _race(reg, [2, 3], expect=None)
    assert (first.champion, first.replaced) == (2, 1)
    assert (second.champion, second.replaced, second.previous) == (3, 2, 2)  # saw the first's result
    assert reg.aliases("echo") == {"champion": 3, "previous": 2}
    assert [p.revision for p in reg.ledger("echo")] == [3, 2, 1]


def test_concurrent_registrations_get_distinct_versions(reg, bundles):
    done: list = [None] * 3
    threads = [threading.Thread(target=lambda i=i: done.__setitem__(i, Registry(reg.url, reg.folder).register(
        "echo", bundles[i]))) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(d.version.version for d in done) == [1, 2, 3]
    for mv in reg.versions("echo"):
        reg.verify(mv)


@pytest.mark.parametrize("target", ["weights", "weights-and-index", "missing"])
def test_tampering_is_detected_before_loading(reg, bundles, target):
    from lstmops.serving.predict import open_version

    mv = reg.register("echo", bundles[0]).version
    reg.promote("echo", 1, reason="first")
    weights = mv.folder / WEIGHTS
    if target == "missing":
        weights.unlink()
    else:
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped byte
        weights.write_bytes(bytes(data))
    if target == "weights-and-index":  # the attacker rewrites checksums.json too: the database still knows
        sums = json.loads((mv.folder / "checksums.json").read_text()) | {WEIGHTS: sha256(weights)}
        (mv.folder / "checksums.json").write_text(json.dumps(sums))
    with pytest.raises(BundleError, match="echo v1: model.weights.h5 (does not match|is missing)"):
        open_version(reg, "echo", "champion")


def test_index_tampering_alone_is_detected(reg, bundles):
    mv = reg.register("echo", bundles[0]).version
    (mv.folder / "checksums.json").write_text("{}")
    with pytest.raises(BundleError, match="checksums.json differs"):
        reg.verify(mv)


def test_loading_is_safe_and_matches_the_reference_loader(tmp_path, monkeypatch):
    import keras
    import numpy as np

    from lstmops.modeling.bundle import load_bundle, save_bundle
    from lstmops.serving.predict import load_model

    monkeypatch.setenv("LSTMOPS_JAX_CACHE", str(tmp_path / "jax-cache"))
    folder = tiny_bundles()["addition"]
    reference, preparer, _ = load_bundle(folder)
    x = preparer.inputs(fit_table("addition", 8))
    np.testing.assert_allclose(load_model(folder).predict(x, verbose=0), reference.predict(x, verbose=0), atol=1e-6)

    marker = tmp_path / "executed"  # what a malicious model file's code would do when run
    evil_code = eval(f"lambda t: (__import__('pathlib').Path({str(marker)!r}).touch(), t)[1]")
    inputs = keras.Input((2,))
    evil = keras.Model(inputs, keras.layers.Lambda(evil_code)(inputs))
    save_bundle(evil, preparer, {"problem": "addition"}, tmp_path / "evil")
    marker.unlink(missing_ok=True)  # building it above ran the code once, here
    with pytest.raises(ValueError, match="(?i)lambda|safe"):
        load_model(tmp_path / "evil")
    assert not marker.exists()


def test_register_stage_registers_once_and_champions_only_the_first(tmp_path):
    root = tmp_path / "repo"
    (root / "models").mkdir(parents=True)
    (root / "params.yaml").write_text("seed: 1\n")
    bundle_copy("echo", root / "models" / "echo")
    env = os.environ | {"LSTMOPS_ROOT": str(root)}
    env.pop("LSTMOPS_DB_URL", None)

    def stage() -> str:
        run = subprocess.run([sys.executable, str(REPO / "stages" / "register.py"), "echo"], env=env,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        return run.stdout

    assert "registered as v1, champion" in stage()
    assert "unchanged (already v1)" in stage()
    record = json.loads((root / "metrics" / "echo" / "registered.json").read_text())
    assert record == {"problem": "echo", "version": 1, "champion": 1}
    meta = root / "models" / "echo" / "metadata.json"  # a new finalized model: v2, but not champion
    meta.write_text(meta.read_text().replace('"seed": 0', '"seed": 1'))
    sums = json.loads((meta.parent / "checksums.json").read_text()) | {"metadata.json": sha256(meta)}
    (meta.parent / "checksums.json").write_text(json.dumps(sums))
    assert "registered as v2; champion v1" in stage()
    assert (root / "registry" / "lstmops.db").is_file()
    assert json.loads((root / "metrics" / "echo" / "registered.json").read_text())["champion"] == 1


# --- the same code on PostgreSQL ----------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_url():
    """A throw-away PostgreSQL server on a Unix socket, when the binaries and the driver are here."""
    pytest.importorskip("psycopg")
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"))  # Debian keeps them off PATH
    path = os.pathsep.join([os.environ.get("PATH", ""), *map(str, debian)])
    initdb, pg_ctl = shutil.which("initdb", path=path), shutil.which("pg_ctl", path=path)
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found")
    base = Path(tempfile.mkdtemp(prefix="lstmops-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser")
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    data, port = base / "data", 54000 + os.getpid() % 1000
    try:
        subprocess.run(run_as + [initdb, "-D", str(data), "-A", "trust", "-U", "lstmops", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run(run_as + [pg_ctl, "-D", str(data), "-l", str(base / "log"), "-w", "-o",
                                 f"-k {base} -p {port} -c listen_addresses='' -c fsync=off", "start"],
                       check=True, capture_output=True, timeout=120)
    except subprocess.CalledProcessError as err:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"cannot start PostgreSQL: {err.stderr.decode(errors='replace').strip()[:200]}")
    yield f"postgresql+psycopg://lstmops@/postgres?host={base}&port={port}"
    subprocess.run(run_as + [pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
    shutil.rmtree(base, ignore_errors=True)


def test_postgresql_registry_promotions_and_store(pg_url, bundles, tmp_path):
    from lstmops.store.records import Store

    reg = Registry(pg_url, tmp_path / "pg-registry")
    for b in bundles:
        reg.register("echo", b)
    reg.promote("echo", 1, reason="first")
    won, lost = _race(reg, [2, 3], expect=1)
    assert won.champion == 2 and isinstance(lost, PromotionConflict)
    assert reg.aliases("echo") == {"champion": 2, "previous": 1}
    reg.rollback("echo", reason="back")
    assert reg.aliases("echo") == {"champion": 1, "previous": 2}
    store = Store(pg_url)
    store.log_predictions("echo", 1, ["a", "b"], [{"x_0": 1}, {"x_0": 2}], [3, 4])
    store.record_observations("echo", ["a", "b"], [{"target": 3}, {"target": 5}])
    (row,) = store.skill("echo", "week")
    assert row["n"] == 2 and row["accuracy"] == 0.5
