"""The CPU cores this process may run on: its affinity mask where the OS has one.

A container or ``taskset`` can give a process fewer cores than the machine has, so
``os.cpu_count()`` would over-count. Replica training (threads per core) and the data
validation stage (processes per core) both divide their work by this number.
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The CPU cores this process may run on (at least 1)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
