import copy

import pytest

from blendphot.config import child_seed, load_config, validate_config
from blendphot.errors import ConfigError

from .workflow_helpers import ROOT


def _merged(base: dict, overlay: dict) -> dict:
    """``--configfile base overlay``: Snakemake updates the first with the second, key by key."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def test_shipped_configs_validate():
    for path in ("config/config.yaml", "config/paper.yaml", "config/paper-stamps.yaml"):
        cfg = load_config(path)
        assert cfg["seed"] == 666
    for base in ("config/config.yaml", "config/paper-mock.yaml"):  # the overlay, as Snakemake merges it
        cfg = validate_config(_merged(load_config(base, validate=False),
                                      load_config("config/transfer-paper-stamps.yaml", validate=False)))
        assert cfg["transfer"]["candels-stamps"]["stamps"]["url"].endswith("candels-blender-data.tar.gz")
    paper = load_config("config/paper.yaml")
    assert sum(paper["blend"]["n_blends"].values()) == 30000
    assert paper["select"] == {"mag_max": 23.5, "p_min": 0.8}


def test_defaults_are_filled(default_config):
    cfg = validate_config({"seed": 1, "survey": {"source": "mock"}})
    assert cfg["blend"]["rule"] == "candels_blender"
    assert cfg["baseline"]["cold"] == {"thresh": 5.0, "minarea": 10, "deblend_cont": 0.01, "deblend_nthresh": 64}
    assert cfg["evaluate"]["outlier_dmag"] == 0.75 and cfg["figures"]["methods"] is None
    assert cfg["stamps"]["size"] == 128
    assert cfg["survey"]["mock"]["psf"]["jitter_fwhm"] == 0.125


@pytest.mark.parametrize("mutate, key", [
    (lambda c: c["blend"].update(max_shift="64"), "blend.max_shift"),
    (lambda c: c["clean"].update(dilate_neighbors=3), "clean.dilate_neighbors"),
    (lambda c: c.update(sed=3), "sed"),
    (lambda c: c["survey"].update(source="hubble"), "survey.source"),
    (lambda c: c["split"]["fractions"].update(test=0.5), "split.fractions"),
    (lambda c: c["blend"].update(max_shift=100), "blend.max_shift"),
    (lambda c: c["survey"]["mock"]["class_fractions"].update(bulge=0.5), "survey.mock.class_fractions"),
    (lambda c: c["train"].update(learning_rate="fast"), "train.learning_rate"),
    (lambda c: c["train"]["models"]["unet"].update(arch="resnet"), "train.models.unet.arch"),
    (lambda c: c["train"]["models"]["unet"].update(filter=3), "train.models.unet.filter"),
    (lambda c: c["train"]["models"]["blend2flux"].update(epochs=0), "train.models.blend2flux.epochs"),
    (lambda c: c["train"]["models"]["blend2mask2flux"].update(init_from="unet2"),
     "train.models.blend2mask2flux.init_from"),
    (lambda c: c["train"]["models"]["blend2mask2flux"].update(init_from="blend2flux"),
     "train.models.blend2mask2flux.init_from"),
    (lambda c: c["train"]["models"]["blend2mask2flux"].update(unet_filters=64),
     "train.models.blend2mask2flux.unet_filters"),
    (lambda c: c["train"]["models"]["unet"].update(unet_depth=9), "train.models.unet.unet_depth"),
    (lambda c: c["train"]["models"]["blend2flux"].update(init_from="unet"), "train.models.blend2flux.init_from"),
    (lambda c: c["train"]["models"]["blend2flux"].update(flux_output="equivariant", normalisation="arcsinh"),
     "train.models.blend2flux.flux_output"),
    (lambda c: c["train"].update(target=True), "train.target"),
    (lambda c: c["train"].update(blends="new"), "train.blends"),
    (lambda c: c["train"]["models"]["blend2flux"].update(freeze_unet_epochs=-1),
     "train.models.blend2flux.freeze_unet_epochs"),
    (lambda c: c["blend"]["n_blends"].update(test=0), "blend.n_blends.test"),
    (lambda c: c["blend"]["n_blends"].update(val=0), "blend.n_blends.val"),
    (lambda c: c["baseline"].update(flux="auto"), "baseline.flux"),
    (lambda c: c["baseline"]["hot"].update(thresh="4"), "baseline.hot.thresh"),
    (lambda c: c["baseline"]["cold"].update(minarea=0), "baseline.cold.minarea"),
    (lambda c: c["evaluate"].update(distance_bins_px=[0, 18, 13]), "evaluate.distance_bins_px"),
    (lambda c: c["figures"].update(methods=["blend2flux", "unet"]), "figures.methods"),
    (lambda c: c["figures"].update(formats=["png"]), "figures.formats.0"),
])
def test_bad_values_name_the_key(default_config, mutate, key):
    cfg = copy.deepcopy(default_config)
    mutate(cfg)
    with pytest.raises(ConfigError, match=rf"'{key}'"):
        validate_config(cfg)


def test_unreadable_config_file(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("seed: [unclosed")
    with pytest.raises(ConfigError, match="c.yaml"):
        load_config(bad)


def test_child_seeds_are_stable_and_distinct():
    a = child_seed(666, "blend_test").generate_state(2)
    b = child_seed(666, "blend_test").generate_state(2)
    c = child_seed(666, "blend_train").generate_state(2)
    assert (a == b).all() and not (a == c).all()


def test_cli_check_config(tmp_path, capsys):
    from blendphot.cli import main

    assert main(["check-config", "config/paper.yaml"]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: -1\nsurvey: {source: mock}\n")
    assert main(["check-config", str(bad)]) == 1
    assert "config key 'seed'" in capsys.readouterr().err


def test_model_settings_merge_shared_keys_and_overrides(default_config):
    from blendphot.config import model_seed, model_settings

    unet = model_settings(default_config, "unet")
    assert unet["model"]["arch"] == "unet" and unet["init_from"] is None
    assert unet["train"]["epochs"] == default_config["train"]["models"]["unet"]["epochs"]
    assert unet["train"]["batch_size"] == default_config["train"]["batch_size"]
    b2m2f = model_settings(default_config, "blend2mask2flux")
    assert b2m2f["init_from"] == "unet" and b2m2f["model"]["dense_layers"] == 2  # schema default
    assert model_seed(666, "unet") == model_seed(666, "unet") != model_seed(666, "blend2flux")
    # fresh blends carry the blend rule and the per-epoch count into the model's settings (its
    # rerun trigger); fixed blends do not
    cfg = copy.deepcopy(default_config)
    cfg["train"]["blends"] = "fixed"
    assert "fresh" not in model_settings(cfg, "blend2flux")
    cfg["train"]["models"]["blend2flux"]["blends"] = "fresh"
    fresh = model_settings(cfg, "blend2flux")["fresh"]
    assert fresh["n_blends"] == cfg["blend"]["n_blends"]["train"] and fresh["rule"] == cfg["blend"]["rule"]
    assert "fresh" not in model_settings(cfg, "unet")


def test_forward_flops_match_torchs_counter():
    """The start-up estimate of training cost counts what torch counts, for every architecture."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from blendphot.config import forward_flops
    from blendphot.models import ModelConfig, build_model

    cfg = validate_config({"seed": 1, "survey": {"source": "mock"}, "train": {"models": {
        "b": {"arch": "blend2flux", "filters": 8, "dense_units": 12},
        "u": {"arch": "unet", "unet_depth": 4, "unet_filters": 4, "overlap_channel": True},
        "m": {"arch": "blend2mask2flux", "unet_depth": 3, "unet_filters": 4, "filters": 4, "conv_layers": 4}}}})
    for entry in cfg["train"]["models"].values():
        keys = {k: v for k, v in entry.items() if k in ModelConfig.__dataclass_fields__}
        model = build_model(ModelConfig(**keys, image_size=64)).to("meta")
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 64, 64, device="meta"))
        assert forward_flops(entry, 64) == pytest.approx(counter.get_total_flops(), rel=0.01), entry["arch"]


def test_paper_networks_are_too_long_for_a_cpu_and_the_demo_is_not(default_config):
    from blendphot.config import expensive_on_cpu

    assert expensive_on_cpu(default_config) == {}
    for base in ("config/config.yaml", "config/paper-mock.yaml"):  # the overlay, as Snakemake merges it
        cfg = validate_config(_merged(load_config(base, validate=False),
                                      load_config("config/transfer-paper-stamps.yaml", validate=False)))
        assert cfg["transfer"]["candels-stamps"]["stamps"]["url"].endswith("candels-blender-data.tar.gz")
    paper = load_config("config/paper.yaml")
    assert set(expensive_on_cpu(paper)) == set(paper["train"]["models"])
    minimal = validate_config({"seed": 1, "survey": {"source": "stamps", "stamps": {"path": "x"}}})
    assert set(expensive_on_cpu(minimal)) == {"blend2flux", "unet", "blend2mask2flux"}  # schema defaults


def test_training_that_is_too_long_refuses_the_cpu_unless_asked():
    import torch

    from blendphot.device import check_device

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(ConfigError, match=r"train.models.blend2flux: training needs ~1.1e\+17 FLOP .* "
                                          "BLENDPHOT_DEVICE=cpu"):
        check_device("auto", 1.1e17, what="train.models.blend2flux")
    check_device("cpu", 1.1e17, what="train.models.blend2flux")  # an explicit choice
    check_device("auto", 1e12, what="train.models.small")  # cheap: the CPU is fine


def test_a_partial_block_takes_the_rest_of_its_defaults(tmp_path, capsys):
    """An overlay that sets one key of a block keeps the block's other defaults, at every depth;
    check-config merges files as --configfile does and prints what MLflow records."""
    import yaml

    from blendphot.cli import main
    from blendphot.config import load_configs

    overlay = tmp_path / "colder.yaml"
    overlay.write_text("baseline: {cold: {thresh: 2.0}}\ntrain: {models: {b2f: {arch: blend2flux}}}\n")
    cfg = load_configs(["tests/config/tiny.yaml", overlay])
    assert cfg["baseline"]["cold"] == {"thresh": 2.0, "minarea": 10, "deblend_cont": 0.01, "deblend_nthresh": 64}
    assert cfg["baseline"]["hot"]["thresh"] == 4.0
    # a map of names is merged, never filled from its default's names
    assert set(cfg["train"]["models"]) == {"blend2flux", "unet", "blend2mask2flux", "blend2image", "b2f"}
    alone = validate_config({"seed": 1, "survey": {"source": "mock"},
                             "train": {"models": {"b2f": {"arch": "blend2flux"}}}})
    assert set(alone["train"]["models"]) == {"b2f"}
    assert main(["check-config", "tests/config/tiny.yaml", str(overlay)]) == 0
    printed = capsys.readouterr().out
    resolved = yaml.safe_load(printed[: printed.rindex("\n", 0, -1)])
    assert resolved["baseline"]["cold"]["minarea"] == 10 and resolved["seed"] == 42
    assert "tiny.yaml + " in printed.splitlines()[-1] and "valid" in printed.splitlines()[-1]


def test_null_means_unset_everywhere():
    cfg = validate_config({"seed": 1, "survey": {"source": "stamps", "stamps": {"url": None, "path": "set/"}}})
    assert cfg["survey"]["stamps"]["path"] == "set/" and cfg["survey"]["stamps"]["url"] is None
    field = {"image": {"url": None, "path": "drz.fits"}, "weight": {"path": "wht.fits", "url": None}}
    cfg = validate_config({"seed": 1, "survey": {"source": "candels", "candels": {
        "fields": {"GDS": field}, "catalogs": {"photometry": {"path": "p.fits"}, "morphology": {"path": "m.fits"}}}}})
    assert cfg["survey"]["candels"]["fields"]["GDS"]["image"] == {"path": "drz.fits"}
    # a key without a default set to null is missing, and said so
    with pytest.raises(ConfigError, match="config key 'seed' is required but missing"):
        validate_config({"seed": None, "survey": {"source": "mock"}})
    cfg = validate_config({"seed": 1, "survey": {"source": "mock"}, "train": {"epochs": None}})
    assert cfg["train"]["epochs"] == 200


def test_survey_file_paths_and_the_url_or_path_choice():
    import os

    cfg = validate_config({"seed": 1, "survey": {"source": "stamps", "stamps": {"path": "~/sets/candels"}}})
    assert cfg["survey"]["stamps"]["path"] == os.path.expanduser("~/sets/candels")
    with pytest.raises(ConfigError, match="survey.stamps': set 'url' or 'path', not both"):
        validate_config({"seed": 1, "survey": {"source": "stamps", "stamps": {"path": "x", "url": "http://h/x"}}})
    field = {"image": {"url": "http://h/drz.fits", "path": "drz.fits"}, "weight": {"path": "wht.fits"}}
    with pytest.raises(ConfigError, match=r"survey.candels.fields.GDS.image': give exactly one of 'url' and 'path' "
                                          r"\(both are set\)"):
        validate_config({"seed": 1, "survey": {"source": "candels", "candels": {"fields": {"GDS": field}}}})


def test_every_setting_is_described_and_config_readme_cannot_drift():
    from blendphot.config import schema_keys, write_reference

    undescribed = [key for key, node in schema_keys() if not node.get("description")]
    assert not undescribed
    assert write_reference("config/README.md", check=True), \
        "config/README.md: run `blendphot config-reference --write config/README.md`"


def test_the_architectures_are_the_registrys(default_config):
    from blendphot.architectures import ARCHITECTURES
    from blendphot.config import load_schema

    assert load_schema()["$defs"]["model"]["properties"]["arch"]["enum"] == list(ARCHITECTURES)
    cfg = {**default_config, "train": {"models": {"x": {"arch": "resnet"}}}}
    with pytest.raises(ConfigError, match="train.models.x.arch"):
        validate_config(cfg)


def test_an_impossible_size_is_refused_at_start_up_naming_the_key(tmp_path, default_config, capsys, monkeypatch):
    """A billion training blends would fail deep in the blend stage (a memory map's seek): the
    start-up check names the key, the size and the space free, and writes nothing."""
    from blendphot.cli import main
    from blendphot.config import check_space, disk_needs

    cfg = copy.deepcopy(default_config)
    cfg["blend"]["n_blends"]["train"] = 1_000_000_000
    with pytest.raises(ConfigError, match=r"config key 'blend.n_blends.train': 1000000000 train blends of 64 x 64 px "
                                          r"take 41.0 TB on disk .* the disk of results/ has [0-9.]+ [GMT]B free"):
        check_space(cfg, tmp_path)
    assert list(tmp_path.iterdir()) == []
    check_space(default_config, tmp_path)  # the demo fits
    # what is written already is not asked for again (a rerun, a job on a cluster node)
    (tmp_path / "results/blend/train").mkdir(parents=True)
    (tmp_path / "results/blend/train/images.npy").touch()
    assert "blend.n_blends.train" not in [key for key, _, _ in disk_needs(cfg, tmp_path)]
    big = tmp_path / "big.yaml"
    big.write_text("blend: {n_blends: {train: 1000000000}}\n")
    # from a project folder with no results yet (the checkout's own results/ may hold a demo's blends)
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    assert main(["check-config", str(ROOT / "config/config.yaml"), str(big)]) == 1
    assert "config key 'blend.n_blends.train'" in capsys.readouterr().err


def test_memory_a_job_does_not_have_is_refused_before_allocating():
    from blendphot import io

    have = io.memory_available()
    assert have and have > 0
    io.require_memory(have // 2, "training", "blend.n_blends")
    with pytest.raises(ConfigError, match=r"config key 'blend.n_blends': training needs [0-9.]+ [GM]B of memory, "
                                          r"but this job has"):
        io.require_memory(have * 2, "training", "blend.n_blends")
