"""Thin Prefect flows and deployments over ``lstmops.update`` (run as scripts or imported as ``flows.*``)."""
