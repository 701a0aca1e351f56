"""Version folders on disk: staging, ownership, orphan clean-up, placing a new version.

A registry folder may be shared by mistake between two databases (another ``--db``, a
fresh PostgreSQL URL at the default folder). To never touch files another registry
depends on, every folder written here records its owner: the registry id of the
database (a uuid in ``registry_settings``) in an :data:`OWNER_FILE`, written into the
staging folder before anything else, so a version folder carries it from the moment
it exists under its final name. The owner file is not a bundle file: it is in no
checksum, and :meth:`Registry.verify <lstmops.registry.versions.Registry.verify>` ignores it.

A version folder is *ours* when its owner file names our id, or when it has none
(made before ownership existed) and our database records that version. Anything else
belongs to another registry: we refuse to write beside it, and never delete it.
Staging folders left by lstmops before ownership existed carry no owner file either:
they are left alone (delete them by hand).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lstmops.errors import BundleError, RegistryError
from lstmops.modeling.bundle import CHECKSUMS, FILES, verify_bundle

OWNER_FILE = ".registry-id"
STAGING_PREFIX = ".incoming-"
STALE_STAGING_S = 3600  # a staging folder this old belongs to a registration that died
_VERSION = re.compile(r"v(\d+)")


def owner_of(folder: Path) -> str | None:
    """The registry id recorded in ``folder``, or None when it has no (readable) owner file."""
    try:
        return (folder / OWNER_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def version_folders(root: Path) -> Iterator[tuple[str, int, Path]]:
    """``(problem, number, path)`` of every ``<root>/<problem>/v<N>`` folder."""
    if not root.is_dir():
        return
    for problem_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for entry in sorted(problem_dir.iterdir()):
            match = _VERSION.fullmatch(entry.name)
            if match and entry.is_dir():
                yield problem_dir.name, int(match.group(1)), entry


def is_ours(path: Path, registry_id: str | None, recorded: bool) -> bool:
    """Whether a version folder provably belongs to this registry."""
    owner = owner_of(path)
    return owner == registry_id if owner is not None else recorded


def check_owned(root: Path, registry_id: str | None, known: set[tuple[str, int]]) -> None:
    """Refuse (one-line :class:`RegistryError`) when ``root`` holds a version folder of another registry.

    Args:
        registry_id: this database's id (None before its first registration: then only
            recorded folders made before ownership existed are ours).
        known: every ``(problem, version)`` this database records.
    """
    for problem, number, path in version_folders(root):
        if not is_ours(path, registry_id, (problem, number) in known):
            raise RegistryError(
                f"registry folder {root} holds model versions this database does not own ({problem}/v{number}); "
                "nothing was changed: use the database that registered them (--db or LSTMOPS_DB_URL) or give "
                f"this database its own registry folder (remove {path} yourself only if it is debris)")


def stage(problem_dir: Path, source: Path, sums: dict[str, str], registry_id: str) -> Path:
    """Copy the bundle into a fresh staging folder owned by ``registry_id``, and check the copy."""
    staged = problem_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
    staged.mkdir(parents=True)
    _write_synced(staged / OWNER_FILE, registry_id.encode())  # first: a crash from here on leaves a folder we own
    for name in (*FILES, CHECKSUMS):
        shutil.copyfile(source / name, staged / name)
        with open(staged / name, "rb") as fh:
            os.fsync(fh.fileno())
    if verify_bundle(staged) != sums:
        raise BundleError(f"{problem_dir.name}: the bundle at {source} changed while it was being copied")
    return staged


def remove_orphans(problem_dir: Path, registry_id: str, known: set[int], keep: Path) -> list[str]:
    """Delete our version folders the database does not record, and our long-dead staging folders."""
    removed = []
    for entry in sorted(problem_dir.iterdir()):
        if entry == keep or not entry.is_dir() or owner_of(entry) != registry_id:
            continue
        match = _VERSION.fullmatch(entry.name)
        orphan = match is not None and int(match.group(1)) not in known
        stale = entry.name.startswith(STAGING_PREFIX) and time.time() - entry.stat().st_mtime > STALE_STAGING_S
        if orphan or stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


def next_number(problem_dir: Path, latest: int) -> int:
    """The next version number: above the latest recorded one and above every folder name on disk."""
    on_disk = [int(m.group(1)) for e in problem_dir.iterdir() if (m := _VERSION.fullmatch(e.name))]
    return max([latest, *on_disk]) + 1


def fetch(store: Any, target: Path, problem: str, number: int, sums: dict[str, str], registry_id: str | None) -> Path:
    """Download a registered version from the model store into ``target`` (``<registry>/<problem>/v<N>``).

    The files go to a staging folder owned by this registry, are checked against the
    checksums the database recorded (``sums``), and only then renamed into place; a
    missing or tampered object raises a one-line error and nothing is kept. A process
    that fetched the same version meanwhile wins; its copy was checked the same way.
    """
    from lstmops.modeling.bundle import sha256

    staged = target.parent / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
    staged.mkdir(parents=True)
    try:
        if registry_id is not None:
            _write_synced(staged / OWNER_FILE, registry_id.encode())
        where = store.get_bundle(problem, sums, (*FILES, CHECKSUMS), staged)
        for name in FILES:
            if sha256(staged / name) != sums.get(name):
                raise BundleError(f"{problem} v{number}: {name} at {where} does not match the checksum recorded at "
                                  "registration (tampered or corrupt); nothing was kept, refusing to load it")
        if json.loads((staged / CHECKSUMS).read_text(encoding="utf-8")) != sums:
            raise BundleError(f"{problem} v{number}: {CHECKSUMS} at {where} differs from the registration record "
                              "(tampered); nothing was kept, refusing to load it")
        try:
            os.replace(staged, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return target


def place(staged: Path, number: int) -> Path:
    """Rename the staging folder to ``v<number>``; never onto an existing folder."""
    target = staged.parent / f"v{number}"
    if target.exists():  # rename(2) would silently replace an empty folder
        raise RegistryError(f"{target} appeared while registering; nothing was changed, try again")
    os.replace(staged, target)
    return target
