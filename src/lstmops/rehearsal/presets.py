"""Size presets for rehearsals (``rehearsal.yaml``), merged over ``params.yaml``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from lstmops import paths
from lstmops.config import Settings, parse_settings
from lstmops.errors import ConfigError, InputError

PRESETS_FILE = "rehearsal.yaml"


def presets_file(root: Path | None = None) -> Path:
    """``rehearsal.yaml`` beside ``params.yaml``."""
    return (root or paths.repo_root()) / PRESETS_FILE


def load_presets(root: Path | None = None) -> dict[str, dict]:
    """Every preset by name (``default`` always exists, and changes nothing)."""
    path = presets_file(root)
    found: dict[str, Any] = {"default": {}}
    if path.is_file():
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise InputError(f"{path.name}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(raw, dict) or not all(isinstance(v, dict) or v is None for v in raw.values()):
            raise InputError(f"{path.name}: expected a mapping of preset names to settings")
        found |= {str(k): v or {} for k, v in raw.items()}
    return found


def merge(base: Any, over: Any) -> Any:
    """``over`` laid onto ``base``: mappings merge key by key, anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = copy.deepcopy(base)
        for key, value in over.items():
            out[key] = merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(over)


def rehearsal_params(raw_params: dict, preset: str, root: Path | None = None) -> dict:
    """``params.yaml``'s raw mapping with ``preset`` merged over it, checked like ``params.yaml`` itself."""
    presets = load_presets(root)
    if preset not in presets:
        raise InputError(f"no rehearsal preset {preset!r} in {PRESETS_FILE}; known: {', '.join(sorted(presets))}")
    merged = merge(raw_params, presets[preset])
    try:
        parse_settings(merged)
    except ConfigError as err:
        raise ConfigError(f"preset {preset!r} of {PRESETS_FILE}: {err}") from None
    return merged


def preset_settings(preset: str, root: Path | None = None) -> Settings:
    """The settings a rehearsal with ``preset`` runs under."""
    path = paths.params_file(root)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return parse_settings(rehearsal_params(raw, preset, root))
