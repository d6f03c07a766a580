"""Load and validate the workflow configuration against its JSON schema."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from blendphot.errors import ConfigError

__all__ = ["SCHEMA_PATH", "load_schema", "validate_config", "load_config", "child_seed"]

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"

# Stage names -> index into SeedSequence(seed).spawn(...); append only, never reorder,
# or every stage's random stream changes.
_SEED_STREAMS = ("mock", "clean", "split", "blend_train", "blend_val", "blend_test", "train")


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def _with_defaults(validator_class):
    """Extend a jsonschema validator so that it fills in ``default`` values."""
    validate_props = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        if extra:
            parts.append(extra[0])
    elif error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        if missing:
            parts.append(missing[0])
    return ".".join(parts) or "<root>"


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Validate ``config`` in place, fill defaults, and check cross-key constraints.

    Raises
    ------
    ConfigError
        Naming the offending key as a dotted path, e.g. ``blend.max_shift``.
    """
    schema = schema if schema is not None else load_schema()
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: len(list(e.absolute_path)))
    if errors:
        err = errors[0]
        key = _key_path(err)
        if err.validator == "additionalProperties":
            raise ConfigError(f"config key '{key}' is not a known setting (misspelt?)")
        if err.validator == "required":
            raise ConfigError(f"config key '{key}' is required but missing")
        raise ConfigError(f"config key '{key}': {err.message}")
    _check_consistency(config)
    return config


def _check_consistency(config: dict) -> None:
    mock = config["survey"].get("mock", {})
    fractions = mock.get("class_fractions", {})
    if fractions and abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ConfigError(
            f"config key 'survey.mock.class_fractions' must sum to 1, got {sum(fractions.values()):.4f}"
        )
    split = config["split"]["fractions"]
    if abs(sum(split.values()) - 1.0) > 1e-6:
        raise ConfigError(f"config key 'split.fractions' must sum to 1, got {sum(split.values()):.4f}")
    size = config["stamps"]["size"]
    if config["blend"]["max_shift"] > size // 2:
        raise ConfigError(
            f"config key 'blend.max_shift' ({config['blend']['max_shift']}) exceeds half the stamp "
            f"size ({size // 2})"
        )
    source = config["survey"]["source"]
    if source == "candels":
        candels = config["survey"]["candels"]
        if not candels["fields"]:
            raise ConfigError("config key 'survey.candels.fields' is empty but survey.source is 'candels'")
        for name in ("photometry", "morphology"):
            if name not in candels["catalogs"]:
                raise ConfigError(f"config key 'survey.candels.catalogs.{name}' is required for source 'candels'")
    if source == "stamps":
        stamps = config["survey"]["stamps"]
        if not (stamps["url"] or stamps["path"]):
            raise ConfigError("config key 'survey.stamps.url' or 'survey.stamps.path' must be set for source 'stamps'")
    names = [f["name"] for f in mock.get("fields", [])]
    if len(names) != len(set(names)):
        raise ConfigError("config key 'survey.mock.fields' has duplicate field names")


def load_config(path: str | Path) -> dict:
    """Read a YAML config file and validate it (see :func:`validate_config`)."""
    path = Path(path)
    try:
        with open(path) as fh:
            config = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path} does not hold a mapping")
    return validate_config(config)


def child_seed(seed: int, stream: str) -> "numpy.random.SeedSequence":  # noqa: F821
    """The SeedSequence of one stage, derived from the workflow's single ``seed``."""
    import numpy as np

    if stream not in _SEED_STREAMS:
        raise KeyError(f"unknown seed stream {stream!r}; known: {_SEED_STREAMS}")
    return np.random.SeedSequence(seed).spawn(len(_SEED_STREAMS))[_SEED_STREAMS.index(stream)]
