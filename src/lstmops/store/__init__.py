"""Predictions, observations and skill per interval."""

from lstmops.store.records import INTERVALS, Store, StoreError, score_outputs

__all__ = ["INTERVALS", "Store", "StoreError", "score_outputs"]
