"""Versioning a collected batch: ``dvc add`` the folder, commit only its ``.dvc`` file, ``dvc push`` it.

The only module of the update steps that runs git or dvc (as subprocesses, in the
repository root). A failed ``dvc add`` is an error (the batch would be unversioned); a
missing git identity, a root outside git or a failed ``dvc push`` are notes in the
result, since the batch is safe on disk and the next run or a person can finish them.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from lstmops.errors import StageError

log = logging.getLogger(__name__)


def _dvc() -> list[str]:
    """The dvc command: beside this Python (the project's venv), else on PATH."""
    beside = Path(sys.executable).parent / "dvc"
    return [str(beside)] if beside.is_file() else [shutil.which("dvc") or "dvc"]


def _run(args: list[str], root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run(args, cwd=root, env=env, capture_output=True, text=True)


def _last_line(proc: subprocess.CompletedProcess) -> str:
    lines = (proc.stderr or proc.stdout or "").strip().splitlines()
    return lines[-1] if lines else f"exit status {proc.returncode}"


def dvc_md5(dvc_file: Path) -> str | None:
    """The hash DVC recorded for the first output of a ``.dvc`` file."""
    outs = (yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}).get("outs") or [{}]
    return outs[0].get("md5")


def git_ready(root: Path) -> str | None:
    """Why git cannot commit in ``root`` (not a repository, no user configured), or None."""
    if _run(["git", "rev-parse", "--is-inside-work-tree"], root).returncode != 0:
        return "not a git repository"
    for key in ("user.name", "user.email"):
        if _run(["git", "config", key], root).returncode != 0:
            return f"git has no {key} configured"
    return None


def commit_only(root: Path, files: list[Path], message: str) -> tuple[bool, str | None]:
    """``git add`` and commit just ``files`` (other staged work stays staged); (committed, note)."""
    why = git_ready(root)
    if why is not None:
        return False, f"not committed: {why}"
    names = [str(f.relative_to(root)) for f in files if f.exists()]
    added = _run(["git", "add", "--", *names], root)
    if added.returncode != 0:
        return False, f"not committed: git add failed: {_last_line(added)}"
    if not _run(["git", "status", "--porcelain", "--", *names], root).stdout.strip():
        return False, None  # already committed by an earlier run of the same day
    done = _run(["git", "commit", "-q", "-m", message, "--", *names], root)
    if done.returncode != 0:
        return False, f"not committed: git commit failed: {_last_line(done)}"
    return True, None


def version_batch(root: Path, folder: Path, message: str) -> dict:
    """Version ``folder`` with DVC and git; returns ``md5``, ``committed``, ``pushed`` and ``notes``.

    Raises:
        StageError: ``dvc add`` failed.
    """
    root, folder = Path(root).resolve(), Path(folder).resolve()
    # Update runs of different problems may collect at the same time (served deployments, a
    # rehearsal's workers): git's index and DVC's repository lock take one writer at a time.
    from filelock import FileLock

    lock = root / ".dvc" / "tmp" / "lstmops-versioning.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock)):
        return _version(root, folder, message)


def _version(root: Path, folder: Path, message: str) -> dict:
    relative = str(folder.relative_to(root))
    added = _run([*_dvc(), "add", "-q", relative], root)
    if added.returncode != 0:
        raise StageError(f"dvc add {relative} failed: {_last_line(added)}")
    dvc_file = folder.with_name(folder.name + ".dvc")
    notes = []
    committed, note = commit_only(root, [dvc_file, folder.parent / ".gitignore"], message)
    if note:
        log.info("%s: %s", relative, note)
        notes.append(note)
    pushed = _run([*_dvc(), "push", "-q", str(dvc_file.relative_to(root))], root)
    if pushed.returncode != 0:
        notes.append(f"dvc push failed: {_last_line(pushed)}")
        log.warning("%s: dvc push failed: %s", relative, _last_line(pushed))
    return {"md5": dvc_md5(dvc_file), "committed": committed, "pushed": pushed.returncode == 0,
            "notes": tuple(notes)}
