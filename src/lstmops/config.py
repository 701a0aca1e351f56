"""Typed, frozen settings parsed once from ``params.yaml``.

Library code receives these objects; it never opens ``params.yaml`` itself. Any
problem is reported as a one-line :class:`ConfigError` that names the offending key.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from lstmops.modeling.architectures.spec import ARCHITECTURE_NAMES, ModelSpec
from lstmops.errors import ConfigError


class Frozen(BaseModel):
    """Base for settings objects: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class DriftStep(Frozen):
    """One scheduled change of a process: sudden at ``start``, or gradual to ``end``.

    A gradual step applies to a share of the generated sequences that rises linearly
    from 0 at ``start`` to 1 at ``end``; a sudden step applies to all from ``start``.
    """

    kind: Literal["sudden", "gradual"]
    start: date
    end: date | None = None
    set: dict[str, Any]

    @model_validator(mode="after")
    def _check_dates(self) -> "DriftStep":
        if self.kind == "gradual" and (self.end is None or self.end <= self.start):
            raise ValueError("a gradual step needs an 'end' date after 'start'")
        if self.kind == "sudden" and self.end is not None:
            raise ValueError("a sudden step takes no 'end' date")
        if not self.set:
            raise ValueError("'set' must change at least one process parameter")
        return self

    def share(self, as_of: date) -> float:
        """Share of sequences generated at ``as_of`` that follow this step (0..1)."""
        if as_of < self.start:
            return 0.0
        if self.kind == "sudden" or as_of >= self.end:  # type: ignore[operator]
            return 1.0
        total = (self.end - self.start).days  # type: ignore[operator]
        return (as_of - self.start).days / total


class Sizes(Frozen):
    """Number of sequences generated per split."""

    train: PositiveInt
    validation: PositiveInt
    test: PositiveInt


class TrainSpec(Frozen):
    """How one model is fitted (``problems.<p>.train``)."""

    batch_size: PositiveInt = 32
    epochs: PositiveInt = 10            # most epochs; early stopping may end sooner
    patience: int = Field(3, ge=0)      # epochs without val-loss gain before stopping; 0 = never stop early
    train_rows: PositiveInt | None = None  # use only the first N training rows (None = all)
    loss: str | None = None             # a Keras loss name; None = the problem's own (problems/<p>.py LOSS)


class ProblemSettings(Frozen):
    """Everything about one problem: process, split sizes, drift, architecture and training."""

    architecture: str
    process: BaseModel
    sizes: Sizes
    drift: tuple[DriftStep, ...] = ()
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()

    @model_validator(mode="after")
    def _known_architecture(self) -> "ProblemSettings":
        if self.architecture not in ARCHITECTURE_NAMES:
            raise ValueError(f"unknown architecture {self.architecture!r} (known: {', '.join(ARCHITECTURE_NAMES)})")
        return self


class EvaluateSettings(Frozen):
    """Robust evaluation: repeated independent fit-and-score runs (``evaluate``)."""

    repeats: int = Field(5, ge=2)             # independent runs per problem, each with its own seed
    test_size: int = Field(1000, ge=10)       # fresh test sequences drawn for each run
    confidence: float = Field(0.95, gt=0, lt=1)
    workers: int = Field(2, ge=1)             # runs trained side by side in separate processes (not replicas)
    generated_shapes: int = Field(1000, ge=10)  # rectangles: shapes generated per run for scoring
    replicas: bool = True                     # train the runs as one batched computation (JAX vmap)


class PrepareSettings(Frozen):
    """How fitted transformers treat inputs outside what they were fitted on."""

    out_of_range: Literal["clip", "reject"] = "reject"
    # Share of the fitted range an input may overshoot and still be clipped quietly:
    # fresh draws of a continuous process land a hair past the training extremes.
    tolerance: float = Field(0.01, ge=0, le=1)


class WindowSpec(Frozen):
    """Which collected batches count as "new" data for the candidates (``update.window``).

    ``days``: batches of the most recent N days; ``share``: that share of every collected
    batch (most recent rows first), so older intervals stay represented.
    """

    days: PositiveInt | None = None
    share: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _default_days(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("days") is None and data.get("share") is None:
            return {**data, "days": 28}
        return data

    @model_validator(mode="after")
    def _one_rule(self) -> "WindowSpec":
        if self.days is not None and self.share is not None:
            raise ValueError("give one of days or share, not both")
        return self


class GateSettings(Frozen):
    """The promotion gate's rules (``update.gate``); see lstmops/update/gate.py."""

    alpha: float = Field(0.05, gt=0, lt=1)        # family-wise error rate over the four candidates (Holm)
    confidence: float = Field(0.95, gt=0, lt=1)   # level of the reported intervals
    min_repeats: int = Field(5, ge=2)             # fewer repeats never promote
    bootstrap: int = Field(2000, ge=100)          # bootstrap iterations
    min_gain: dict[str, float] = {}               # per problem, in its own metric; unlisted: 0


class UpdateOverride(Frozen):
    """One problem's own update sizes (``update.overrides.<problem>``); unset keys keep ``update``'s."""

    batch_size: PositiveInt | None = None
    eval_size: PositiveInt | None = None
    old_size: PositiveInt | None = None
    extra_epochs: PositiveInt | None = None
    fresh_epochs: PositiveInt | None = None
    lr_factor: float | None = Field(None, gt=0, le=1)
    repeats: int | None = Field(None, ge=1)
    max_repeats: int | None = Field(None, ge=1)


class UpdateSettings(Frozen):
    """The five-step update process (``update``)."""

    schedule: str = "0 6 * * 1"                   # cron (UTC) of the scheduled update run of every problem
    batch_size: PositiveInt = 2000                # new labelled sequences collected per problem and run
    eval_size: PositiveInt = 1000                 # fresh sequences of the run's date that no arm trains on
    old_size: PositiveInt = 5000                  # old sequences (the build's training data) arms may use
    window: WindowSpec = WindowSpec()
    extra_epochs: PositiveInt = 2                 # epochs added to the deployed model by arms (a), (b), baseline
    fresh_epochs: PositiveInt | None = None       # epochs of fresh models (c), (d); None = the problem's train.epochs
    lr_factor: float = Field(0.3, gt=0, le=1)     # continued training starts at this share of the learning rate
    repeats: int = Field(10, ge=1)                # trainings per arm, each with its own seed
    max_repeats: int = Field(20, ge=1)            # INCONCLUSIVE adds repeats up to this many per arm
    runner: Literal["process", "dask"] = "process"
    dask_address: str | None = None               # a running Dask scheduler; None = a local cluster
    workers: int = Field(2, ge=1)                 # trainings side by side (processes or Dask workers)
    replicas: int = Field(10, ge=0)               # repeats of one arm trained together as vmapped replicas
    approval_days: PositiveInt = 7                # a proposal not decided by then expires
    gate: GateSettings = GateSettings()
    overrides: dict[str, UpdateOverride] = {}     # per problem: its own sizes (e.g. the costly moving line)

    @model_validator(mode="after")
    def _cap_above_repeats(self) -> "UpdateSettings":
        if self.max_repeats < self.repeats:
            raise ValueError(f"max_repeats ({self.max_repeats}) must be >= repeats ({self.repeats})")
        return self


class TrafficSettings(Frozen):
    """Simulated daily traffic (``monitoring.traffic``): requests drawn from the drifting process."""

    requests: int = Field(300, ge=1)              # predictions per problem and day
    observation_lag_days: int = Field(1, ge=0)    # the true outcome of a day's requests is observed this much later


class MonitoringSettings(Frozen):
    """Monitoring of the deployed models (``monitoring``)."""

    shadow_days: int = Field(14, ge=0)            # the previous model predicts the same traffic in shadow this long
    schedule: str = "0 5 * * *"                   # cron (UTC) of the daily monitoring flow
    threshold: float = Field(0.001, gt=0, lt=1)   # p-value below which one summary feature has drifted
    drift_share: float = Field(0.01, gt=0, le=1)  # share of a group's features that must drift to flag it
    alpha: float = Field(0.001, gt=0, lt=1)       # skill loss: significance against the reference skill
    min_rows: int = Field(30, ge=2)               # fewer predictions (or observations) in an interval: not tested
    reference_size: int = Field(3000, ge=50)      # sequences in each problem's reference sample per model version
    cooldown_days: int = Field(6, ge=0)           # no new update is triggered this soon after the last one
    traffic: TrafficSettings = TrafficSettings()


class Settings(Frozen):
    """The whole of ``params.yaml``."""

    seed: int
    as_of: date
    problems: dict[str, ProblemSettings]
    prepare: PrepareSettings = PrepareSettings()
    evaluate: EvaluateSettings = EvaluateSettings()
    update: UpdateSettings = UpdateSettings()
    monitoring: MonitoringSettings = MonitoringSettings()


def update_for(settings: Settings, problem: str) -> Settings:
    """``settings`` whose ``update`` holds ``problem``'s own sizes (``update.overrides.<problem>`` applied)."""
    override = settings.update.overrides.get(problem)
    if override is None:
        return settings
    merged = settings.update.model_copy(update=override.model_dump(exclude_none=True))
    return settings.model_copy(update={"update": UpdateSettings.model_validate(merged.model_dump())})


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part not in ("function-after",))


def _first_error(err: ValidationError, prefix: str) -> str:
    first = err.errors()[0]
    where = ".".join(x for x in (prefix, _loc(first["loc"])) if x)
    message = first["msg"].removeprefix("Value error, ")
    return f"params.yaml: {where}: {message}"


def _parse_problem(name: str, raw: Any) -> ProblemSettings:
    from lstmops.problems import get_problem, problem_names

    key = f"problems.{name}"
    if name not in problem_names():  # any module of lstmops/problems that defines Params and generate
        known = ", ".join(sorted(problem_names()))
        raise ConfigError(f"params.yaml: {key}: unknown problem {name!r} (no module lstmops/problems/{name}.py "
                          f"with Params and generate; known: {known})")
    if not isinstance(raw, dict):
        raise ConfigError(f"params.yaml: {key}: must be a mapping")
    model = get_problem(name).Params
    try:
        process = model.model_validate(raw.get("process") or {})
    except ValidationError as err:
        raise ConfigError(_first_error(err, f"{key}.process")) from None
    try:
        settings = ProblemSettings.model_validate({**raw, "process": process})
    except ValidationError as err:
        raise ConfigError(_first_error(err, key)) from None
    _check_drift(key, model, process, settings.drift)
    return settings


def _check_drift(key: str, model: type[BaseModel], process: BaseModel, drift: tuple[DriftStep, ...]) -> None:
    """Every drift step must name real parameters and keep the process valid."""
    current = process.model_dump()
    for i, step in enumerate(drift):
        unknown = sorted(set(step.set) - set(model.model_fields))
        if unknown:
            raise ConfigError(f"params.yaml: {key}.drift.{i}.set.{unknown[0]}: not a parameter of this process")
        current = {**current, **step.set}
        try:
            model.model_validate(current)
        except ValidationError as err:
            raise ConfigError(_first_error(err, f"{key}.drift.{i}.set")) from None


def parse_settings(raw: Any) -> Settings:
    """Validate a parsed ``params.yaml`` mapping into :class:`Settings`."""
    if not isinstance(raw, dict):
        raise ConfigError("params.yaml: the file must hold a mapping of sections")
    raw = dict(raw)
    problems_raw = raw.pop("problems", None)
    if not isinstance(problems_raw, dict) or not problems_raw:
        raise ConfigError("params.yaml: problems: must list at least one problem")
    problems = {name: _parse_problem(name, value) for name, value in problems_raw.items()}
    try:
        settings = Settings.model_validate({**raw, "problems": problems})
    except ValidationError as err:
        raise ConfigError(_first_error(err, "")) from None
    for section, names in (("update.overrides", settings.update.overrides), ("update.gate.min_gain",
                                                                           settings.update.gate.min_gain)):
        unknown = sorted(set(names) - set(problems))
        if unknown:
            raise ConfigError(f"params.yaml: {section}.{unknown[0]}: not a problem of this file "
                              f"(problems: {', '.join(problems)})")
    for name in settings.update.overrides:
        try:
            update_for(settings, name)
        except ValidationError as err:
            raise ConfigError(_first_error(err, f"update.overrides.{name}")) from None
    return settings


def load_settings(path: Path) -> Settings:
    """Read and validate ``params.yaml``; raises :class:`ConfigError` on any problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"params.yaml: cannot read {path}: {err.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"params.yaml: not valid YAML{where}") from None
    return parse_settings(raw)


def problem_settings(settings: Settings, name: str) -> ProblemSettings:
    """The settings of one problem, or a one-line error naming the unknown problem."""
    if name not in settings.problems:
        known = ", ".join(sorted(settings.problems))
        raise ConfigError(f"unknown problem {name!r} (params.yaml lists: {known})")
    return settings.problems[name]
