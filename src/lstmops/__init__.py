"""lstmops: an MLOps pipeline for LSTM sequence models."""

__version__ = "0.1.0"
