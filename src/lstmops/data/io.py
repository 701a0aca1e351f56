"""Reading and writing raw tables and model-ready arrays, atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Write a raw table as Parquet, replacing ``path`` only once the file is complete."""
    tmp = _atomic_target(path)
    try:
        table.to_parquet(tmp, index=False, engine="pyarrow", compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_table(path: Path) -> pd.DataFrame:
    """Read a raw table; a missing file is a clear error naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"no table at {path} (run `dvc repro` first)")
    return pd.read_parquet(path, engine="pyarrow")


def write_array(array: np.ndarray, path: Path) -> None:
    """Write one array as .npy, atomically."""
    tmp = _atomic_target(path)
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_array(path: Path, mmap: bool = False) -> np.ndarray:
    """Read one .npy array (memory-mapped when asked); pickled objects are refused."""
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
