"""Deterministic random streams derived from the one root seed in params.yaml.

Each consumer (a problem's split, a training repeat, a dated batch) asks for its own
stream by name, so adding a problem or a split never shifts another one's data.
"""

from __future__ import annotations

import zlib

import numpy as np


def stream_key(*parts: str | int) -> list[int]:
    """Integer entropy for a named stream; stable across processes (unlike ``hash``)."""
    return [p if isinstance(p, int) else zlib.crc32(str(p).encode("utf-8")) for p in parts]


def rng_for(seed: int, *parts: str | int) -> np.random.Generator:
    """A generator for the stream named by ``parts`` under the root ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed, *stream_key(*parts)]))


def int_seed_for(seed: int, *parts: str | int) -> int:
    """A 31-bit integer seed (for Keras and the like) for the stream named by ``parts``."""
    return int(np.random.SeedSequence([seed, *stream_key(*parts)]).generate_state(1)[0] >> 1)
