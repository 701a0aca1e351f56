"""Monitoring of the deployed models: drift of sequence summaries, skill over time, Evidently, reports.

- :mod:`lstmops.monitoring.engine`: the only module that calls Evidently (drift tests,
  snapshots, the workspace and its dashboards), returning the project's typed results;
- :mod:`lstmops.monitoring.checks`: one interval (day or week) of one problem checked
  against the deployed version's reference profile;
- :mod:`lstmops.monitoring.traffic`: simulated daily requests and late outcomes;
- :mod:`lstmops.monitoring.daily`: the daily run over all problems and the update triggers;
- :mod:`lstmops.monitoring.report`: the stakeholder report (self-contained HTML pages).
"""
