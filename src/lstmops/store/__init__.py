"""Predictions, observations and skill per interval."""

from lstmops.store.records import GENERATIVE, INTERVALS, Store, StoreError, score_outputs

__all__ = ["GENERATIVE", "INTERVALS", "Store", "StoreError", "score_outputs"]
