"""Training: learning a toy problem, resuming a killed job, checkpoints, metrics, bad input."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from blendphot import evaluate as ev
from blendphot.blend import Blends
from blendphot.data import Batches
from blendphot.errors import InputError
from blendphot.models import ModelConfig
from blendphot.train import (
    TrainConfig,
    evaluate,
    fit,
    iou,
    load_checkpoint,
    load_model,
    mape,
    mask_targets,
)
from tests.toy import toy_blends

ROOT = Path(__file__).resolve().parents[1]
# bitwise-reproducible CPU kernels (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_mape_is_the_papers_equation_1():
    pred, true = torch.tensor([[90.0, 30.0]]), torch.tensor([[100.0, 20.0]])
    assert float(mape(pred, true)) == pytest.approx(100 * (0.1 + 0.5) / 2)


def test_iou_and_mask_targets():
    a = torch.zeros(1, 2, 4, 4)
    a[0, 0, :2] = 1
    a[0, 1, 1:3] = 1
    b = a.clone()
    b[0, 0, 1] = 0
    assert iou(b, a).tolist() == [[0.5, 1.0]]
    overlap = mask_targets(a, 3)[0, 2]
    assert overlap.sum() == 4 and overlap[1].all()
    # one convention with the evaluation: nothing to overlap is NaN, never a perfect 1
    empty = torch.zeros(1, 1, 2, 2)
    assert torch.isnan(iou(empty, empty)).all()
    assert np.allclose(iou(b, a).numpy(), ev.iou(b.numpy(), a.numpy()))
    assert np.isnan(ev.iou(empty.numpy(), empty.numpy())).all()


@pytest.mark.slow
def test_flux_head_learns_two_gaussian_blobs_to_better_than_5_percent(tmp_path, toy_config):
    train, val = toy_blends(2000, seed=1), toy_blends(500, seed=2)
    summary = fit(toy_config(data=train), TrainConfig(epochs=40, learning_rate=1e-3, seed=3), train, val,
                  tmp_path / "state")
    assert summary["best_val_loss"] < 5.0, summary["history"][-1]
    model, _ = load_model(summary["best_path"])
    with torch.inference_mode():
        pred = model(torch.from_numpy(val.images)).fluxes
    assert float(mape(pred, torch.tensor(val.fluxes))) == pytest.approx(summary["best_val_loss"], rel=1e-3)


_KILLED_RUN = textwrap.dedent("""
    import os, signal, sys, torch
    sys.path.insert(0, {root!r})
    from tests.conftest import make_resume_setup
    from blendphot.train import fit
    torch.set_num_threads(1)
    cfg, tcfg, train, val = make_resume_setup("fixed")
    def on_epoch(record, epoch):
        if epoch == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # the job dies right here, like a killed SLURM job
    fit(cfg, tcfg, train, val, {state!r}, on_epoch=on_epoch)
""")


@pytest.mark.slow
def test_a_killed_training_resumes_where_it_stopped_and_ends_as_if_never_killed(tmp_path, resume_setup):
    state = tmp_path / "state"
    proc = subprocess.run([sys.executable, "-c", _KILLED_RUN.format(root=str(ROOT), state=str(state))],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == -9, proc.stderr
    assert load_checkpoint(state / "last.pt")["epoch"] == 2

    cfg, tcfg, train, val = resume_setup("fixed")
    resumed = fit(cfg, tcfg, train, val, state)
    assert resumed["resumed"] and [h["epoch"] for h in resumed["history"]] == list(range(6))

    reference = fit(cfg, tcfg, train, val, tmp_path / "reference")
    assert not reference["resumed"]
    a = load_checkpoint(resumed["last_path"])
    b = load_checkpoint(reference["last_path"])
    assert a["best_epoch"] == b["best_epoch"]
    for key in b["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_a_checkpoint_of_another_configuration_is_not_resumed(tmp_path, toy_config):
    train, val = toy_blends(64, seed=1), toy_blends(32, seed=2)
    cfg = toy_config(data=train)
    fit(cfg, TrainConfig(epochs=1, seed=1), train, val, tmp_path)
    again = fit(cfg, TrainConfig(epochs=2, seed=1, learning_rate=5e-4), train, val, tmp_path)
    assert not again["resumed"] and again["epochs_run"] == 2


def test_a_checkpoint_of_other_data_is_not_resumed(tmp_path, toy_config):
    from blendphot.data import fingerprint

    train, val = toy_blends(64, seed=1), toy_blends(32, seed=2)
    other = toy_blends(64, seed=3)
    assert fingerprint(train, val) == fingerprint(train, val) != fingerprint(other, val)
    cfg, tcfg = toy_config(data=train), TrainConfig(epochs=2, seed=1)
    fit(cfg, tcfg, train, val, tmp_path, data_id=fingerprint(train, val))
    assert not fit(cfg, tcfg, other, val, tmp_path, data_id=fingerprint(other, val))["resumed"]


def test_checkpoints_load_with_weights_only_and_hold_everything_to_resume(tmp_path, toy_config):
    train, val = toy_blends(64, seed=1), toy_blends(32, seed=2)
    summary = fit(toy_config("unet", data=train), TrainConfig(epochs=1, seed=1), train, val, tmp_path)
    state = torch.load(summary["last_path"], weights_only=True)
    for key in ("model", "optimizer", "scheduler", "epoch", "best_metric", "model_config", "train_config",
                "generator", "history"):
        assert key in state
    model, cfg = load_model(summary["best_path"])
    assert cfg.arch == "unet" and not model.training


def test_evaluate_reports_flux_and_mask_metrics(toy_config):
    data = toy_blends(40, seed=3)
    cfg = toy_config("blend2mask2flux", data=data)
    from blendphot.models import build_model

    torch.manual_seed(0)
    metrics = evaluate(build_model(cfg), Batches(data, 16, torch.device("cpu"), shuffle=False, with_masks=True),
                       cfg, TrainConfig())
    assert set(metrics) == {"loss", "flux_mape", "mask_bce", "mape_central", "mape_companion", "iou"}
    assert metrics["loss"] == pytest.approx(metrics["flux_mape"] + 0.1 * metrics["mask_bce"], rel=1e-5)
    assert 0 <= metrics["iou"] <= 1


def test_seeded_batches_repeat_and_cover_every_blend():
    data = toy_blends(50)

    def order(seed):
        batches = Batches(data, 16, torch.device("cpu"), shuffle=True, generator=torch.Generator().manual_seed(seed))
        return torch.cat([b.fluxes[:, 0] for b in batches])

    assert torch.equal(order(1), order(1)) and not torch.equal(order(1), order(2))
    assert sorted(order(1).tolist()) == sorted(data.fluxes[:, 0].tolist())


def test_training_settings_drop_nothing():
    with pytest.raises(ValueError, match=r"training settings \['epoch'\] are not known"):
        TrainConfig.from_dict({"epoch": 3})


def _write_split(tmp_path, n=6, size=16):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "images.npy", rng.normal(size=(n, size, size)).astype(np.float32))
    np.save(tmp_path / "masks.npy", np.zeros((n, 2, size, size), np.uint8))
    pd.DataFrame({"blend_id": range(n), "cen_flux": 10.0, "comp_flux": 20.0}).to_csv(tmp_path / "catalog.csv",
                                                                                   index=False)
    return tmp_path


def test_blends_load_and_reject_bad_files(tmp_path):
    (tmp_path / "ok").mkdir()
    split = _write_split(tmp_path / "ok")
    data = Blends.load(split)
    assert len(data) == 6 and data.masks.shape == (6, 2, 16, 16) and data.images.dtype == np.float32
    data.require_fluxes()

    def broken(name, change):
        d = tmp_path / name
        d.mkdir()
        for f in ("images.npy", "masks.npy", "catalog.csv"):
            (d / f).write_bytes((split / f).read_bytes())
        change(d)
        return d

    def nan_pixel(d):
        bad = np.load(d / "images.npy")
        bad[3, 5, 5] = np.nan
        np.save(d / "images.npy", bad)

    with pytest.raises(InputError, match=r"nan/images.npy: non-finite pixels in 1 blends \(first: row 3"):
        Blends.load(broken("nan", nan_pixel))

    def edit(column, value):
        def change(d):
            cat = pd.read_csv(d / "catalog.csv")
            if value is None:
                cat = cat.drop(columns=column)
            else:
                cat.loc[4, column] = value
            cat.to_csv(d / "catalog.csv", index=False)
        return change

    with pytest.raises(InputError, match=r"neg/catalog.csv: column 'comp_flux' must be finite and positive; row 4"):
        Blends.load(broken("neg", edit("comp_flux", -1.0))).require_fluxes()
    with pytest.raises(InputError, match=r"nocol/catalog.csv: missing column 'cen_flux'"):
        Blends.load(broken("nocol", edit("cen_flux", None))).require_fluxes()
    def short(d):
        pd.read_csv(d / "catalog.csv").iloc[:4].to_csv(d / "catalog.csv", index=False)

    with pytest.raises(InputError, match=r"short: blend images of shape \(6, 16, 16\) do not hold the 4"):
        Blends.load(broken("short", short))

    def cut(d):
        (d / "images.npy").write_bytes((split / "images.npy").read_bytes()[:500])

    with pytest.raises(InputError, match="cut/images.npy: not a readable .npy array"):
        Blends.load(broken("cut", cut))


def test_blend2mask2flux_starts_from_the_trained_unet(tmp_path, toy_config):
    train, val = toy_blends(64, seed=1), toy_blends(32, seed=2)
    unet = fit(toy_config("unet", data=train), TrainConfig(epochs=1, seed=1), train, val, tmp_path / "u")
    cfg = toy_config("blend2mask2flux", data=train)
    summary = fit(cfg, TrainConfig(epochs=1, seed=1, learning_rate=1e-12), train, val, tmp_path / "b",
                  init_from=unet["best_path"])
    # With a vanishing learning rate the U-Net part is still the trained U-Net.
    u = load_checkpoint(unet["best_path"])["model"]
    b = load_checkpoint(summary["best_path"])["model"]
    assert torch.allclose(b["unet.inc.0.weight"], u["inc.0.weight"], atol=1e-6)

    wrong = toy_config("blend2mask2flux", data=train, overlap_channel=True)
    with pytest.raises(InputError, match="overlap_channel"):
        fit(wrong, TrainConfig(epochs=1), train, val, tmp_path / "c", init_from=unet["best_path"])


def test_checkpoints_follow_their_interval_and_the_best_weights_stay_in_memory(tmp_path, toy_config):
    train, val = toy_blends(64, seed=1), toy_blends(32, seed=2)
    saved = []

    def on_epoch(record, epoch):
        saved.append(load_checkpoint(tmp_path / "last.pt")["epoch"])

    tcfg = TrainConfig(epochs=4, seed=1, learning_rate=1e-3, checkpoint_interval_s=1e9)
    summary = fit(toy_config(data=train), tcfg, train, val, tmp_path, on_epoch=on_epoch)
    assert saved == [0, 0, 0, 3]  # after the first epoch, then at the end only
    best = load_checkpoint(summary["best_path"])
    assert best["epoch"] == summary["best_epoch"]
    last = load_checkpoint(summary["last_path"])
    for key, value in best["model"].items():  # the resumable state carries the best weights too
        assert torch.equal(value, last["best_model"][key])


def test_the_flux_output_layer_runs_in_float32_under_bf16_autocast():
    from blendphot.models import build_model

    model = build_model(ModelConfig("blend2flux", image_size=32, filters=4, flux_scale=20.0))
    seen = {}
    last = model.head.dense.net[-1]
    last.register_forward_hook(lambda module, inputs, output: seen.update(inp=inputs[0].dtype, out=output.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fluxes = model(torch.rand(2, 32, 32)).fluxes
    assert seen == {"inp": torch.float32, "out": torch.float32} and fluxes.dtype == torch.float32


def test_a_gpu_asked_for_and_not_usable_is_an_error(monkeypatch):
    from blendphot.device import resolve_device
    from blendphot.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    assert resolve_device("auto").type == "cpu" and resolve_device("cpu").type == "cpu"
    with pytest.raises(ConfigError, match=r"asked for BLENDPHOT_DEVICE=cuda, but this torch build .* CPU-only"):
        resolve_device("cuda", what="training of unet")
    with pytest.raises(ConfigError, match=r"asked for a GPU \(the job's gpu resource\)"):
        resolve_device("auto", gpu_requested=True)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ConfigError, match="no GPU is visible"):
        resolve_device("cuda:0")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(ConfigError, match="driver is too old"):
        resolve_device("auto", gpu_requested=True)


@pytest.mark.parametrize(("affinity", "cpu_max", "asked", "threads"), [
    (2, None, 8, 2),                 # a GPU-node profile's 8 threads on a 2-CPU host
    (16, "200000 100000", 8, 2),     # a container's quota of 2 CPUs on a 16-CPU host
    (16, "150000 100000", 8, 2),     # 1.5 CPUs: rounded up
    (16, "max 100000", 8, 8),        # no quota
    (4, "max 100000", 1, 1),         # never more than asked
])
def test_torch_gets_the_jobs_threads_but_no_more_than_its_cpus(tmp_path, monkeypatch, affinity, cpu_max, asked,
                                                                threads):
    import torch

    from blendphot import device

    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: set(range(affinity)))
    monkeypatch.setattr(device, "CGROUP_CPU_MAX", tmp_path / "cpu.max")
    if cpu_max:
        (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    before = torch.get_num_threads()
    try:
        assert device.set_torch_threads(asked) == threads and torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


def test_a_cosine_schedule_anneals_over_the_epochs(tmp_path, toy_config):
    train, val = toy_blends(64, seed=1), toy_blends(32, seed=2)
    summary = fit(toy_config(data=train), TrainConfig(epochs=3, seed=1, learning_rate=1e-3, lr_min=0.0,
                                                      lr_schedule="cosine"), train, val, tmp_path)
    lrs = [h["lr"] for h in summary["history"]]
    assert lrs == pytest.approx([1e-3, 0.75e-3, 0.25e-3])


def test_the_soft_dice_loss():
    from blendphot.train import soft_dice_loss

    target = torch.zeros(1, 1, 8, 8)
    target[0, 0, 2:4, 2:4] = 1
    perfect = torch.where(target > 0, 20.0, -20.0)
    assert float(soft_dice_loss(perfect, target)) == pytest.approx(0.0, abs=1e-6)
    # all background: BCE is small (the galaxy is 4 pixels of 64), Dice is not
    background = torch.full_like(target, -20.0)
    assert float(soft_dice_loss(background, target)) == pytest.approx(1 - 1 / 5, abs=1e-6)


def test_the_same_weights_are_the_same_bytes(tmp_path):
    """A checkpoint's bytes depend on its content only, not on the temporary file it was written
    through: reruns are byte-identical and checksums of outputs mean something."""
    from blendphot.train import save_checkpoint

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    for name in ("a.pt", "another-name.pt"):
        save_checkpoint(tmp_path / name, model=model, model_cfg=ModelConfig(arch="blend2flux"))
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "another-name.pt").read_bytes()


class _Payload:
    def __reduce__(self):
        return (print, ("this ran",))


def test_a_checkpoint_that_holds_code_is_not_loaded_and_no_one_is_told_to_allow_it(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    torch.save({"model": {}, "payload": _Payload()}, bad)
    with pytest.raises(InputError) as err:
        load_checkpoint(bad)
    message = str(err.value)
    assert message == (f"{bad}: not a blendphot checkpoint (it holds objects other than tensors and plain values, "
                       "which could run code); it was not loaded")
    assert "weights_only" not in message and "this ran" not in capsys.readouterr().out
