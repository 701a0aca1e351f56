"""Modeling: architectures, training, repeated runs, evaluation and statistics, plots, model bundles."""
