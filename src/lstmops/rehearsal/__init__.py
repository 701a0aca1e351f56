"""Rehearsals: the operating loop replayed through simulated days, and the gate's decisions scored.

:mod:`~lstmops.rehearsal.presets` merges a size preset (``rehearsal.yaml``) over
``params.yaml``; :mod:`~lstmops.rehearsal.world` makes a rehearsal's own root (database,
registry, git + DVC); :mod:`~lstmops.rehearsal.driver` drives the real flows day by day;
:mod:`~lstmops.rehearsal.decisions` runs many independent gate decisions in worlds
whose truth is known (``benchmarks/bench_decisions.py``).
"""
