"""Load and validate the workflow configuration against its JSON schema."""

from __future__ import annotations

import copy
import itertools
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from blendphot.architectures import ARCHITECTURES, architecture, has_fluxes
from blendphot.errors import ConfigError

if TYPE_CHECKING:  # jsonschema and numpy are imported where they are used
    import jsonschema
    import numpy

__all__ = [
    "ARCH_KEYS",
    "BLEND_RULE_KEYS",
    "CPU_FLOPS",
    "CPU_TRAINING_LIMIT_FLOP",
    "RUNTIME_KEYS",
    "SCHEMA_PATH",
    "TRAIN_KEYS",
    "child_seed",
    "expensive_on_cpu",
    "forward_flops",
    "load_config",
    "load_schema",
    "model_seed",
    "model_settings",
    "runtime_settings",
    "training_flops",
    "validate_config",
]

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"

# Stage names -> index into SeedSequence(seed).spawn(...); append only, never reorder,
# or every stage's random stream changes.
_SEED_STREAMS = ("mock", "clean", "split", "blend_train", "blend_val", "blend_test", "train", "fresh_blends")


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    """The config schema, with the architectures of the registry as the choices of ``arch``."""
    with open(path) as fh:
        schema = yaml.safe_load(fh)
    schema["$defs"]["model"]["properties"]["arch"]["enum"] = list(ARCHITECTURES)
    return schema


def _with_defaults(validator_class, root: dict):
    """Extend a jsonschema validator so that it fills in ``default`` values: a key left out takes
    its default, and a block of fixed keys given in part (``baseline: {cold: {thresh: 2}}``)
    takes the rest of its default key by key. Maps of names (``train.models``) are not filled."""
    import jsonschema

    validate_props = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" not in sub:
                    continue
                if name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
                elif "properties" in _resolve(sub, root):
                    _fill(instance[name], sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _fill(value, default):
    """A partly given block completed from its default, key by key at every depth."""
    if isinstance(value, dict) and isinstance(default, dict):
        for key, sub in default.items():
            value[key] = _fill(value[key], sub) if key in value else copy.deepcopy(sub)
    return value


def drop_nulls(node):
    """null means unset, everywhere: a key set to null is removed, so that it takes its default
    (or is reported missing when it has none), as if it had been left out."""
    if isinstance(node, dict):
        for key in [k for k, v in node.items() if v is None]:
            del node[key]
        for value in node.values():
            drop_nulls(value)
    elif isinstance(node, list):
        for value in node:
            drop_nulls(value)
    return node


def merge_configs(base: dict, overlay: dict) -> dict:
    """``overlay`` merged into ``base`` key by key, as Snakemake merges ``--configfile`` files."""
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_configs(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


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
    import jsonschema  # here, not at import: training imports this module where jsonschema may be absent

    schema = schema if schema is not None else load_schema()
    drop_nulls(config)
    validator = _with_defaults(jsonschema.Draft202012Validator, schema)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: len(list(e.absolute_path)))
    if errors:
        err = errors[0]
        key = _key_path(err)
        if err.validator == "additionalProperties":
            raise ConfigError(f"config key '{key}' is not a known setting (misspelt?)")
        if err.validator == "required":
            raise ConfigError(f"config key '{key}' is required but missing")
        if err.validator == "oneOf" and isinstance(err.instance, dict):
            given = [k for k in ("url", "path") if k in err.instance]
            raise ConfigError(f"config key '{key}': give exactly one of 'url' and 'path'"
                              + (" (both are set)" if len(given) == 2 else " (neither is set)"))
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
    for section in ("survey", "inspect", "transfer"):
        _expand_user_paths(config.get(section))
    source = config["survey"]["source"]
    if source == "candels":
        candels = config["survey"]["candels"]
        if not candels["fields"]:
            raise ConfigError("config key 'survey.candels.fields' is empty but survey.source is 'candels'")
        for name in ("photometry", "morphology"):
            if name not in candels["catalogs"]:
                raise ConfigError(f"config key 'survey.candels.catalogs.{name}' is required for source 'candels'")
    if source == "stamps":
        _check_stampset(config["survey"]["stamps"], "survey.stamps", " for source 'stamps'")
    for name, entry in config.get("transfer", {}).items():
        _check_stampset(entry["stamps"], f"transfer.{name}.stamps", "")
    _check_models(config)
    _check_evaluation(config)
    names = [f["name"] for f in mock.get("fields", [])]
    if len(names) != len(set(names)):
        raise ConfigError("config key 'survey.mock.fields' has duplicate field names")


def _check_stampset(stamps: dict, key: str, why: str) -> None:
    if not (stamps["url"] or stamps["path"]):
        raise ConfigError(f"config key '{key}.url' or '{key}.path' must be set{why}")
    if stamps["url"] and stamps["path"]:
        raise ConfigError(f"config key '{key}': set 'url' or 'path', not both")


def _expand_user_paths(node) -> None:
    """``~/data/...`` in a file's ``path`` (or ``decisions``) means the home directory, as in a shell."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("path", "decisions") and isinstance(value, str):
                node[key] = os.path.expanduser(value)
            else:
                _expand_user_paths(value)


def _check_evaluation(config: dict) -> None:
    for section, keys in (("evaluate", ("mag_diff_bins", "distance_bins_px", "distance_bins_own_re")),
                          ("figures", ("figure2_distance_px", "figure2_mag_diff"))):
        for key in keys:
            edges = config[section][key]
            if any(b <= a for a, b in itertools.pairwise(edges)):
                raise ConfigError(f"config key '{section}.{key}' must be strictly increasing, got {edges}")
    methods = config["figures"]["methods"]
    if methods is not None:
        flux_models = has_fluxes(config["train"]["models"])
        for name in methods:
            if name != "sep" and name not in flux_models:
                raise ConfigError(f"config key 'figures.methods': {name!r} is neither 'sep' nor a flux model of "
                                  f"train.models ({', '.join(flux_models)})")


# Bytes per pixel of one blend on disk: the image (float32), the two masks (uint8) and the
# central galaxy alone (float32); of one stamp after cleaning: cleaned, original (float32), mask.
BLEND_BYTES_PER_PIXEL = 4 + 2 + 4
CLEAN_BYTES_PER_PIXEL = 4 + 4 + 1
CUT_BYTES_PER_PIXEL = 4 + 4 + 4  # the cut stamps: image, weight, segmentation


def disk_needs(config: dict, root: str | Path = ".") -> list[tuple[str, str, int]]:
    """What the workflow will write that is not written yet: (config key, what, bytes), for the
    outputs whose size follows from the config (mock mosaics, stamps, blends)."""
    root = Path(root)
    size = config["stamps"]["size"]
    needs = []
    for split, n in config["blend"]["n_blends"].items():
        if not (root / f"results/blend/{split}/images.npy").exists():
            needs.append((f"blend.n_blends.{split}", f"{n} {split} blends of {size} x {size} px",
                          int(n) * size * size * BLEND_BYTES_PER_PIXEL))
    if config["survey"]["source"] == "mock":
        mock = config["survey"]["mock"]
        for i, field in enumerate(mock["fields"]):
            if not (root / f"results/survey/{field['name']}").exists():
                needs.append((f"survey.mock.fields[{i}]", f"the {field['nx']} x {field['ny']} px mosaic "
                              f"{field['name']} and its weight map", int(field["nx"]) * int(field["ny"]) * 8))
        if not (root / "results/clean/images.npy").exists():
            area = sum(f["nx"] * f["ny"] for f in mock["fields"]) * (config["survey"]["pixel_scale"] / 60) ** 2
            n_stamps = int(mock["density_bright"] * area)  # the catalogued galaxies, an upper bound of the stamps
            needs.append(("stamps.size", f"about {n_stamps} stamps of {size} x {size} px, cut and cleaned",
                          n_stamps * size * size * (CUT_BYTES_PER_PIXEL + CLEAN_BYTES_PER_PIXEL)))
    return needs


def check_space(config: dict, root: str | Path = ".") -> None:
    """Refuse at start-up a config whose outputs cannot fit on the disk of ``results/``: one
    message naming the key that asks for most, the size it implies and the space free."""
    from blendphot.io import free_bytes

    needs = disk_needs(config, root)
    total = sum(n for _, _, n in needs)
    free = free_bytes(Path(root) / "results")
    if free is None or total <= free:
        return
    key, what, most = max(needs, key=lambda need: need[2])
    raise ConfigError(f"config key '{key}': {what} take {_size(most)} on disk ({_size(total)} for every output "
                      f"not written yet), but the disk of results/ has {_size(free)} free. Lower it, or point "
                      "results/ at a larger disk.")


def _size(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1e3:.1f} kB"


def load_configs(paths, *, validate: bool = True) -> dict:
    """Several config files merged in order (later files win, key by key), as Snakemake's
    ``--configfile a.yaml b.yaml`` merges them, then validated and completed from the defaults."""
    config: dict = {}
    for path in paths:
        merge_configs(config, load_config(path, validate=False))
    return validate_config(config) if validate else config


def load_config(path: str | Path, *, validate: bool = True) -> dict:
    """Read a YAML config file and validate it (see :func:`validate_config`); ``validate=False``
    for an overlay that completes another file."""
    path = Path(path)
    try:
        with open(path) as fh:
            config = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    if config is None:
        raise ConfigError(f"config file {path} is empty")
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path} does not hold a mapping of keys (it holds a {type(config).__name__})")
    return validate_config(config) if validate else config


def child_seed(seed: int, stream: str) -> numpy.random.SeedSequence:
    """The SeedSequence of one stage, derived from the workflow's single ``seed``."""
    import numpy as np

    if stream not in _SEED_STREAMS:
        raise KeyError(f"unknown seed stream {stream!r}; known: {_SEED_STREAMS}")
    return np.random.SeedSequence(seed).spawn(len(_SEED_STREAMS))[_SEED_STREAMS.index(stream)]


# The blend section's keys that define how a pair is drawn (the blend stage and fresh training blends).
BLEND_RULE_KEYS = ("rule", "max_mag_diff", "min_shift_re", "max_shift")

# Keys of a train.models entry that describe the network, and the optimisation keys that
# a model may override (the rest of the train section is shared).
ARCH_KEYS = ("arch", "filters", "conv_layers", "dense_units", "dense_layers", "dense_activation", "unet_depth",
             "unet_filters", "overlap_channel", "flux_output", "pooling", "unet_centre_channel", "flux_sigma")
TRAIN_KEYS = ("normalisation", "epochs", "batch_size", "learning_rate", "lr_factor", "lr_patience", "lr_min",
              "early_stopping_patience", "min_delta", "loss_weights", "flux_loss", "target", "blends", "augment",
              "freeze_unet_epochs", "lr_schedule", "mask_loss", "image_loss")
# Keys of the train section that change how fast a model trains, not what it learns: never
# rule params, so that toggling them reruns nothing (a killed run resumes across them too).
RUNTIME_KEYS = ("amp", "channels_last", "deterministic", "checkpoint_interval_s")


def model_settings(config: dict, name: str) -> dict:
    """One model's resolved settings: ``{"model": {...}, "train": {...}, "init_from": str | None}``.

    ``model`` holds the architecture keys set in ``train.models.<name>`` (unset keys take the
    paper's values, see :class:`blendphot.models.ModelConfig`); ``train`` the shared
    ``train`` keys with the model's overrides applied. These are the params of the model's
    Snakemake rules, so changing a shared key reruns every model and changing one model's
    entry reruns that model only (and what depends on it).
    """
    entry = config["train"]["models"][name]  # architecture keys filled by the schema's defaults
    shared = {k: copy.deepcopy(config["train"][k]) for k in TRAIN_KEYS}
    shared.update({k: copy.deepcopy(v) for k, v in entry.items() if k in TRAIN_KEYS})
    settings = {"model": {k: v for k, v in entry.items() if k in ARCH_KEYS},
                "train": shared, "init_from": entry.get("init_from")}
    if architecture(entry["arch"]).images and entry["flux_sigma"]:  # its fluxes, measured to calibrate σ
        settings["measure"] = copy.deepcopy(config["clean"])
    if shared["blends"] == "fresh":  # drawn in the training job, with the blend stage's rule
        blend = config["blend"]
        settings["fresh"] = {"n_blends": blend["n_blends"]["train"], "pixel_scale": config["survey"]["pixel_scale"],
                             **{k: blend[k] for k in BLEND_RULE_KEYS}}
    return settings


def runtime_settings(config: dict) -> dict:
    """The runtime switches of training and prediction (:data:`RUNTIME_KEYS`)."""
    return {k: config["train"][k] for k in RUNTIME_KEYS}


def model_seed(seed: int, name: str) -> int:
    """The training seed of one model: the ``train`` stream, mixed with the model's name."""
    import zlib

    state = child_seed(seed, "train").generate_state(1)[0]
    return int((int(state) ^ zlib.crc32(name.encode())) & 0x7FFFFFFF)


def _check_models(config: dict) -> None:
    models = config["train"]["models"]
    size = config["stamps"]["size"]
    for name, entry in models.items():
        key = f"train.models.{name}"
        arch = architecture(entry["arch"])
        init = entry.get("init_from")
        if arch.init_from is not None and init is not None:
            if init not in models:
                raise ConfigError(f"config key '{key}.init_from': no model named {init!r} under train.models")
            if models[init]["arch"] != arch.init_from:
                raise ConfigError(f"config key '{key}.init_from': {init!r} is a {models[init]['arch']}, not a "
                                  f"{arch.init_from}")
            for k in ("unet_depth", "unet_filters", "overlap_channel", "unet_centre_channel", "normalisation"):
                mine = entry.get(k, config["train"].get(k))
                theirs = models[init].get(k, config["train"].get(k))
                if mine != theirs:
                    raise ConfigError(f"config key '{key}.{k}' ({mine!r}) differs from the U-Net it starts "
                                      f"from, train.models.{init}.{k} ({theirs!r})")
        elif init is not None:
            starters = [a.name for a in ARCHITECTURES.values() if a.init_from]
            raise ConfigError(f"config key '{key}.init_from' applies only to {', '.join(starters)} models")
        if entry["flux_output"] == "equivariant" and arch.fluxes:
            norm = entry.get("normalisation", config["train"]["normalisation"])
            if norm != "linear" or entry["dense_activation"] != "relu":
                raise ConfigError(f"config key '{key}.flux_output': equivariant needs normalisation 'linear' and "
                                  f"dense_activation 'relu' (this model has {norm!r} and "
                                  f"{entry['dense_activation']!r}, which are not homogeneous)")
        if entry["flux_sigma"] and not arch.images and (not arch.fluxes or entry["flux_output"] != "log"):
            raise ConfigError(f"config key '{key}.flux_sigma': a flux uncertainty needs a network with fluxes and "
                              f"flux_output 'log', or an image network (this is a {arch.name} with flux_output "
                              f"{entry['flux_output']!r})")
        conv, depth = entry["conv_layers"], entry["unet_depth"]
        if arch.flux_head_channels and size % 2 ** (conv - 1):
            raise ConfigError(f"config key '{key}.conv_layers': stamps.size {size} is not divisible by "
                              f"2**(conv_layers - 1) = {2 ** (conv - 1)}")
        if arch.unet and size % 2 ** (depth - 1):
            raise ConfigError(f"config key '{key}.unet_depth': stamps.size {size} is not divisible by "
                              f"2**(unet_depth - 1) = {2 ** (depth - 1)}")


# Training that would take more than about two hours on a workstation CPU (~100 GFLOP/s
# sustained): it starts on a CPU only when asked for explicitly (BLENDPHOT_DEVICE=cpu).
CPU_TRAINING_LIMIT_FLOP = 7e14
CPU_FLOPS = 1e11


def forward_flops(entry: dict, size: int) -> float:
    """Multiply-adds x 2 of one forward pass of a train.models entry on one size x size blend.

    Convolutions and dense layers only (pooling and activations are negligible); matches
    torch's FLOP counter to within 1 % (tests/test_config.py).
    """
    def conv_pool(c_in, filters, layers):
        macs, side = 0.0, size
        for i in range(layers):
            c_out = filters * 2 ** (i // 2)
            macs += side * side * 9 * c_in * c_out
            c_in, side = c_out, (side // 2 if i < layers - 1 else side)
        units = entry.get("dense_units") or filters
        n_in = c_in * side * side
        for _ in range(entry["dense_layers"]):
            macs, n_in = macs + n_in * units, units
        return macs + n_in * 2

    def unet():
        depth, f = entry["unet_depth"], entry["unet_filters"]
        macs, c_in = 0.0, 1
        for level in range(depth):
            c, side = f * 2 ** level, size // 2 ** level
            macs += side * side * 9 * (c_in * c + c * c)
            c_in = c
        for level in range(depth - 1):
            c, side = f * 2 ** level, size // 2 ** level
            macs += side * side * (2 * c * c + 9 * (2 * c * c + c * c))  # 2x2 up-conv from 2c, block
        out = 1 if arch.images else (3 if entry.get("overlap_channel") else 2)
        return macs + size * size * f * out

    arch = architecture(entry["arch"])
    macs = unet() if arch.unet else 0.0
    if arch.flux_head_channels:
        macs += conv_pool(arch.flux_head_channels, entry["filters"], entry["conv_layers"])
    return 2.0 * macs


def training_flops(config: dict, name: str) -> float:
    """Estimated FLOPs to train model ``name`` for its full epochs: forward + backward (3x the
    forward) on every training blend, a forward pass on every validation blend."""
    entry, settings = config["train"]["models"][name], model_settings(config, name)
    fwd = forward_flops(entry, config["stamps"]["size"])
    n = config["blend"]["n_blends"]
    return settings["train"]["epochs"] * fwd * (3 * n["train"] + n["val"])


def expensive_on_cpu(config: dict) -> dict[str, float]:
    """Models whose training exceeds :data:`CPU_TRAINING_LIMIT_FLOP`: name -> FLOPs."""
    costs = {name: training_flops(config, name) for name in config["train"]["models"]}
    return {name: flops for name, flops in costs.items() if flops > CPU_TRAINING_LIMIT_FLOP}


# --- the reference of every key, generated from the schema ----------------------------------

REFERENCE_BEGIN = "<!-- BEGIN config reference: generated from workflow/schemas/config.schema.yaml by " \
                  "`blendphot config-reference --write config/README.md`; do not edit by hand -->"
REFERENCE_END = "<!-- END config reference -->"


def _resolve(node: dict, schema: dict) -> dict:
    """A schema node with its ``$ref`` followed (the referring node's own keys win)."""
    while "$ref" in node:
        target = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def schema_keys(schema: dict | None = None) -> list[tuple[str, dict]]:
    """Every setting of the schema as (dotted key, resolved node), depth first, in file order.
    ``<name>`` stands for a key the user chooses (a model, a field)."""
    schema = schema if schema is not None else load_schema()
    out: list[tuple[str, dict]] = []

    def walk(node: dict, prefix: str) -> None:
        node = _resolve(node, schema)
        for name, child in node.get("properties", {}).items():
            key = f"{prefix}{name}"
            child = _resolve(child, schema)
            out.append((key, child))
            walk(child, key + ".")
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            walk(extra, prefix + "<name>.")
        items = node.get("items")
        if isinstance(items, dict) and "properties" in _resolve(items, schema):
            walk(items, prefix + "[].")

    walk(schema, "")
    return out


def _cell(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text.replace("|", "\\|")


def reference_markdown(schema: dict | None = None) -> str:
    """The table of every config key: type, default and description, between the markers."""
    rows = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for key, node in schema_keys(schema):
        kind = node.get("type", "object" if "properties" in node else "")
        kind = " or ".join(kind) if isinstance(kind, list) else kind
        if "enum" in node:
            kind = " \\| ".join(map(str, node["enum"]))
        default = f"`{_cell(node['default'])}`" if "default" in node else ""
        rows.append(f"| `{key}` | {kind} | {default} | {_cell(node.get('description', ''))} |")
    return "\n".join([REFERENCE_BEGIN, "", *rows, "", REFERENCE_END])


def write_reference(path: str | Path, *, check: bool = False) -> bool:
    """Replace the generated reference in ``path`` (between the markers); with ``check``, only
    say whether it is up to date. Returns whether the file holds the current reference."""
    path = Path(path)
    text = path.read_text()
    if REFERENCE_BEGIN not in text or REFERENCE_END not in text:
        raise ConfigError(f"{path}: no generated config reference (its markers are missing)")
    head, rest = text.split(REFERENCE_BEGIN, 1)
    tail = rest.split(REFERENCE_END, 1)[1]
    new = head + reference_markdown() + tail
    if check:
        return new == text
    path.write_text(new)
    return True
