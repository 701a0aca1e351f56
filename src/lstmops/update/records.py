"""Saving and loading the typed result of each update step as JSON, atomically.

Each step of an update run writes ``<run dir>/<step>.json``; a re-run reads what an
earlier attempt saved and goes on from there, so nothing is half-applied or repeated.
"""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_record(record: Any, path: Path) -> Path:
    """Write a dataclass (or plain data) as JSON: to a temporary file first, then renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(_plain(record), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def load_record(path: Path) -> dict[str, Any] | None:
    """The saved JSON at ``path``, or None when no step saved it yet."""
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
