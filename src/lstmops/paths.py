"""Every path the project reads or writes, relative to the repository root.

Nothing else in the project builds paths by hand, and nothing assumes the current
directory: the root is found from ``LSTMOPS_ROOT`` or by walking up to ``params.yaml``.
"""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The repository root: ``$LSTMOPS_ROOT``, else the nearest parent holding params.yaml."""
    env = os.environ.get("LSTMOPS_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "params.yaml").is_file():
            return candidate
    return here


def params_file(root: Path | None = None) -> Path:
    """The one settings file."""
    return (root or repo_root()) / "params.yaml"


def raw_dir(problem: str, root: Path | None = None) -> Path:
    """Raw generated tables (Parquet) of one problem."""
    return (root or repo_root()) / "data" / "raw" / problem


def raw_split(problem: str, split: str, root: Path | None = None) -> Path:
    """One raw split table: train, validation or test."""
    return raw_dir(problem, root) / f"{split}.parquet"


def validation_result(problem: str, root: Path | None = None) -> Path:
    """Validation result (JSON) of one problem: deterministic, tracked by DVC."""
    return (root or repo_root()) / "data" / "validated" / f"{problem}.json"


def data_docs_dir(problem: str, root: Path | None = None) -> Path:
    """Great Expectations Data Docs (HTML) of one problem's last validation.

    Kept out of DVC's outputs on purpose: the pages carry run times, which would make
    every rebuild look like a change of data.
    """
    return (root or repo_root()) / "data" / "docs" / problem


def prepared_dir(problem: str, root: Path | None = None) -> Path:
    """Model-ready arrays of one problem."""
    return (root or repo_root()) / "data" / "prepared" / problem


def preprocessing_file(problem: str, root: Path | None = None) -> Path:
    """Fitted preprocessing state (JSON) of one problem, beside its prepared arrays."""
    return prepared_dir(problem, root) / "preprocessing.json"


def models_dir(problem: str, root: Path | None = None) -> Path:
    """The finalized model of one problem: architecture, weights, preprocessing, metadata."""
    return (root or repo_root()) / "models" / problem


def metrics_dir(problem: str, root: Path | None = None) -> Path:
    """DVC metrics, plots data and diagnostic PNGs of one problem, kept in git.

    Beside them, two machine-local records that git ignores and DVC does not track:
    :func:`timings_file` and :func:`registered_file`.
    """
    return (root or repo_root()) / "metrics" / problem


def evaluation_file(problem: str, root: Path | None = None) -> Path:
    """The DVC metrics of the robust evaluation: headline numbers only (primary mean, std, CI;
    secondary means; repeats), so `dvc metrics show` and `dvc exp show` stay narrow."""
    return metrics_dir(problem, root) / "evaluation.json"


def statistics_file(problem: str, root: Path | None = None) -> Path:
    """Full statistics of the robust evaluation (every metric's n, mean, std, CI, min, max,
    median; best epochs): a plain DVC output, not a metric."""
    return metrics_dir(problem, root) / "statistics.json"


def final_file(problem: str, root: Path | None = None) -> Path:
    """DVC metrics of the finalized model on the untouched test split."""
    return metrics_dir(problem, root) / "final.json"


def timings_file(problem: str, root: Path | None = None) -> Path:
    """Seconds and device per evaluation run: machine-dependent, so git-ignored and no DVC output."""
    return metrics_dir(problem, root) / "timings.json"


def dvc_lock(root: Path | None = None) -> Path:
    """DVC's record of the last build: data hashes per stage."""
    return (root or repo_root()) / "dvc.lock"


def registry_dir(root: Path | None = None) -> Path:
    """The model registry's artifacts: one folder per problem, ``v<N>`` per version."""
    return (root or repo_root()) / "registry"


def database_url(root: Path | None = None) -> str:
    """Where registry metadata, predictions and observations live: ``$LSTMOPS_DB_URL``,
    else a SQLite file in the registry folder. Any SQLAlchemy URL works (e.g. PostgreSQL)."""
    env = os.environ.get("LSTMOPS_DB_URL")
    if env:
        return env
    return f"sqlite:///{registry_dir(root) / 'lstmops.db'}"


def registered_file(problem: str, root: Path | None = None) -> Path:
    """What the register stage last did on this machine (version, champion).

    The registry is machine-local state, so this record is git-ignored and no DVC output
    (a fresh machine registers v1 where another is at v2); the registry itself is the truth.
    """
    return metrics_dir(problem, root) / "registered.json"


def batches_dir(problem: str, root: Path | None = None) -> Path:
    """Labelled batches the update flow collected for one problem, one folder per date (DVC-tracked)."""
    return (root or repo_root()) / "data" / "batches" / problem


def batch_dir(problem: str, day: str, root: Path | None = None) -> Path:
    """One collected batch (``day`` as YYYY-MM-DD): new training rows, evaluation rows, validation result."""
    return batches_dir(problem, root) / day


def quarantine_dir(problem: str, day: str, root: Path | None = None) -> Path:
    """A batch that failed its contract, kept with its validation report (not DVC-tracked)."""
    return (root or repo_root()) / "data" / "quarantine" / problem / day


def update_run_dir(problem: str, run_id: str, root: Path | None = None) -> Path:
    """Everything one update run of one problem saved: each step's result, the arms' weights (git-ignored)."""
    return (root or repo_root()) / "updates" / problem / run_id


def monitoring_dir(root: Path | None = None) -> Path:
    """Everything monitoring writes (generated, git-ignored): workspace, records, pages, reports."""
    return (root or repo_root()) / "monitoring"


def workspace_dir(root: Path | None = None) -> Path:
    """The Evidently workspace: a project per problem, a snapshot per interval (``evidently ui`` serves it)."""
    return monitoring_dir(root) / "workspace"


def interval_record(problem: str, interval: str, period: str, root: Path | None = None) -> Path:
    """What the monitoring check of one interval (``day``/``week`` starting ``period``) found, as JSON."""
    return monitoring_dir(root) / "records" / problem / interval / f"{period}.json"


def reference_profile(problem: str, version: int, root: Path | None = None) -> Path:
    """A model version's reference profile: summary features and skill on the training process (cache)."""
    return monitoring_dir(root) / "reference" / problem / f"v{version}.parquet"


def snapshot_page(problem: str, interval: str, period: str, root: Path | None = None) -> Path:
    """Evidently's own HTML page of one interval's snapshot."""
    return monitoring_dir(root) / "html" / problem / f"{interval}-{period}.html"


def reports_dir(root: Path | None = None) -> Path:
    """The stakeholder report: ``index.html`` and one self-contained page per update run."""
    return monitoring_dir(root) / "reports"


def triggers_file(root: Path | None = None) -> Path:
    """Every update the monitoring flow triggered or declined to trigger, one JSON line each."""
    return monitoring_dir(root) / "triggers.jsonl"
