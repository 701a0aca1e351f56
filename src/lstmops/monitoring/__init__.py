"""Monitoring: drift features, skill over time, the one Evidently wrapper, stakeholder reports."""
