"""Fresh training blends: the symmetries, the seeding, the split's walls, resuming mid-epoch."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from blendphot.blend import FreshBlends, dihedral, load_pool, make_blends
from blendphot.clean import CleanedStamps
from blendphot.data import Batches
from blendphot.train import TrainConfig, fit, load_checkpoint
from tests.toy import TOY_RULE as RULE
from tests.toy import toy_blends, toy_fresh_blends, toy_pool

ROOT = Path(__file__).resolve().parents[1]
# bitwise-reproducible CPU kernels (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("size", [8, 9])
def test_the_eight_symmetries_are_distinct_permutations_that_keep_the_centre_pixel(size):
    a = np.arange(size * size).reshape(size, size)
    turned = [dihedral(a, t) for t in range(8)]
    assert len({t.tobytes() for t in turned}) == 8
    c = size // 2
    for t in turned:
        assert sorted(t.ravel()) == list(range(size * size))  # every pixel kept once
        assert t[c, c] == a[c, c]
    # rows and columns reflect about the centre pixel; the transpose keeps the diagonal
    assert dihedral(a, 1)[c + 2, c] == a[c - 2, c] and dihedral(a, 2)[c, c + 3] == a[c, c - 3]
    assert np.array_equal(dihedral(a, 4), a.T)
    # a stack turns image by image
    stack = np.stack([a, a + 100])
    assert np.array_equal(dihedral(stack, 5)[1], dihedral(a + 100, 5))


def test_augmented_blends_hold_the_turned_stamps_and_their_masks():
    images, masks, pool = toy_pool(30, seed=3)
    blends = make_blends(images, masks, pool, 50, **RULE, pixel_scale=0.06, rng=np.random.default_rng(1),
                         augment=True)
    cat = blends.catalog
    assert set(cat["cen_transform"]) == set(range(8))
    gid = {g: i for i, g in enumerate(pool["gid"])}
    for row in cat.itertuples():
        j, k = gid[row.cen_gid], gid[row.comp_gid]
        assert np.array_equal(blends.masks[row.blend_id, 0], dihedral(masks[j], row.cen_transform))
        companion = np.zeros_like(images[k])
        src = dihedral(images[k], row.comp_transform)
        s = images.shape[-1]
        ys, xs = slice(max(row.dy, 0), s + min(row.dy, 0)), slice(max(row.dx, 0), s + min(row.dx, 0))
        companion[ys, xs] = src[max(-row.dy, 0):s - max(row.dy, 0), max(-row.dx, 0):s - max(row.dx, 0)]
        expected = dihedral(images[j], row.cen_transform) + companion
        assert np.allclose(blends.images[row.blend_id], expected, atol=1e-6)
    # the same generator without augmentation gives the same pairs and shifts
    plain = make_blends(images, masks, pool, 50, **RULE, pixel_scale=0.06, rng=np.random.default_rng(1))
    cols = ["cen_gid", "comp_gid", "dx", "dy"]
    assert plain.catalog[cols].equals(cat[cols])


def test_fresh_blends_repeat_bit_for_bit_for_a_seed_and_differ_between_epochs_and_seeds():
    a, b = toy_fresh_blends(), toy_fresh_blends()
    for k in (0, 3):
        ea, eb = a.epoch(k), b.epoch(k)
        assert np.array_equal(ea.images, eb.images) and np.array_equal(ea.masks, eb.masks)
        assert ea.catalog.equals(eb.catalog)
    assert not np.array_equal(a.epoch(0).images, a.epoch(1).images)
    assert not np.array_equal(a.epoch(0).images, toy_fresh_blends(seed=12).epoch(0).images)
    assert (a.fingerprint() == b.fingerprint() != toy_fresh_blends(seed=12).fingerprint()
            != toy_fresh_blends(augment=False).fingerprint())
    # the same seed gives the same batches
    batches = [list(Batches(a.epoch(2), 16, torch.device("cpu"), shuffle=True,
                            generator=torch.Generator().manual_seed(5))) for _ in range(2)]
    for (x1, y1, *_), (x2, y2, *_) in zip(*batches, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_no_galaxy_of_another_split_ever_enters_a_training_batch(tmp_path):
    images, masks, pool = toy_pool(60, seed=4)
    CleanedStamps(images=images, originals=images, masks=masks, catalog=pool,
                  dropped=pd.DataFrame(columns=["gid", "reason"])).save(tmp_path / "clean")
    split = np.where(np.arange(60) % 5 == 0, "test", np.where(np.arange(60) % 5 == 1, "val", "train"))
    pd.DataFrame({"gid": pool["gid"], "split": split}).to_csv(tmp_path / "galaxies.csv", index=False)
    train_gids = set(pool["gid"][split == "train"])

    t_images, t_masks, t_pool = load_pool(tmp_path / "clean", tmp_path / "galaxies.csv", "train")
    assert set(t_pool["gid"]) == train_gids and len(t_images) == len(t_masks) == len(train_gids)
    sampler = FreshBlends(t_images, t_masks, t_pool, 200, settings=RULE, pixel_scale=0.06, seed=1)
    by_gid = dict(zip(pool["gid"], images, strict=True))
    for k in range(5):
        blends = sampler.epoch(k)
        used = set(blends.catalog["cen_gid"]) | set(blends.catalog["comp_gid"])
        assert used <= train_gids
        # and the pixels are those galaxies' own: the central stamp, turned, plus what the companion adds
        row = blends.catalog.iloc[k]
        central = dihedral(by_gid[row.cen_gid], row.cen_transform)
        assert np.allclose(blends.images[k][blends.masks[k, 1] == 0], central[blends.masks[k, 1] == 0], atol=0.5)


def test_fresh_training_draws_each_epoch_once(tmp_path, monkeypatch, toy_config):
    import blendphot.blend as blend

    sampler, val = toy_fresh_blends(n=256), toy_blends(64, seed=2)
    drawn, make = [], blend.make_blends
    monkeypatch.setattr(blend, "make_blends", lambda *a, **kw: drawn.append(kw["rng"]) or make(*a, **kw))
    cfg = toy_config(data=sampler.epoch(0))  # epoch 0 drawn once, as run_train_model does for the input scales
    summary = fit(cfg, TrainConfig(epochs=3, learning_rate=1e-3, seed=1), sampler, val, tmp_path)
    assert summary["epochs_run"] == 3
    assert len(drawn) == 3  # epochs 0, 1 and 2: epoch 0 is not composed a second time by fit


_KILLED_MID_EPOCH = textwrap.dedent("""
    import os, signal, sys, torch
    sys.path.insert(0, {root!r})
    import blendphot.train as train
    from tests.conftest import make_resume_setup
    torch.set_num_threads(1)
    cfg, tcfg, sampler, val = make_resume_setup("fresh")
    steps, step = [0], train.train_step
    def dying_step(*args):
        steps[0] += 1
        if steps[0] == 2 * 8 + 3:  # the 4th step of epoch 2 (8 steps an epoch)
            os.kill(os.getpid(), signal.SIGKILL)
        return step(*args)
    train.train_step = dying_step
    train.fit(cfg, tcfg, sampler, val, {state!r}, data_id=sampler.fingerprint())
""")


@pytest.mark.slow
def test_a_fresh_blend_run_killed_mid_epoch_resumes_to_the_same_weights(tmp_path, resume_setup):
    state = tmp_path / "state"
    proc = subprocess.run([sys.executable, "-c", _KILLED_MID_EPOCH.format(root=str(ROOT), state=str(state))],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == -9, proc.stderr
    assert load_checkpoint(state / "last.pt")["epoch"] == 1  # epochs 0 and 1 done, killed inside 2

    cfg, tcfg, sampler, val = resume_setup("fresh")
    resumed = fit(cfg, tcfg, sampler, val, state, data_id=sampler.fingerprint())
    assert resumed["resumed"] and [h["epoch"] for h in resumed["history"]] == list(range(4))
    reference = fit(cfg, tcfg, sampler, val, tmp_path / "reference", data_id=sampler.fingerprint())
    a, b = load_checkpoint(resumed["last_path"]), load_checkpoint(reference["last_path"])
    for key in b["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert [h["val_loss"] for h in resumed["history"]] == [h["val_loss"] for h in reference["history"]]


def test_a_frozen_unet_is_not_updated_until_its_epochs_are_over(tmp_path, toy_config):
    from blendphot.models import build_model

    train, val = toy_blends(64, seed=1), toy_blends(32, seed=2)
    cfg = toy_config("blend2mask2flux", data=train)
    torch.manual_seed(3)
    start = {k: v.clone() for k, v in build_model(cfg).unet.state_dict().items()}
    snapshots = []

    def on_epoch(record, epoch):
        snapshots.append(torch.load(tmp_path / "last.pt", weights_only=True)["model"])

    fit(cfg, TrainConfig(epochs=3, seed=3, freeze_unet_epochs=2, checkpoint_interval_s=0), train, val, tmp_path,
        on_epoch=on_epoch)
    unet = [{k[len("unet."):]: v for k, v in s.items() if k.startswith("unet.")} for s in snapshots]
    for epoch in (0, 1):
        assert all(torch.equal(unet[epoch][k], start[k]) for k in start)
    assert not all(torch.equal(unet[2][k], start[k]) for k in start)
    head = [s["head.features.net.0.weight"] for s in snapshots]
    assert not torch.equal(head[0], head[1])  # the head trains meanwhile


def test_the_true_flux_target_and_the_log_loss(tmp_path, toy_config):
    from blendphot.models import ModelOutput
    from blendphot.train import batch_loss, log_flux_error

    pred, true = torch.tensor([[50.0, 200.0]]), torch.tensor([[100.0, 100.0]])
    assert float(log_flux_error(pred, true)) == pytest.approx(100 * np.log(2))
    cfg = toy_config()
    loss, parts = batch_loss(cfg, TrainConfig(flux_loss="log"), ModelOutput(fluxes=pred), true, None)
    assert float(loss) == float(parts["flux_log"]) and "flux_mape" in parts

    sampler = toy_fresh_blends(n=32)
    blends = sampler.epoch(0)
    assert np.array_equal(blends.targets("truth"), blends.catalog[["cen_flux_true", "comp_flux_true"]]
                          .to_numpy(np.float32))
    assert not np.array_equal(blends.targets("truth"), blends.targets("isolated"))
    y = next(iter(Batches(blends, 32, torch.device("cpu"), shuffle=False, target="truth")))[1]
    assert torch.equal(y, torch.from_numpy(blends.targets("truth")))
    # a stamp set has no truth: one message naming the file and the key
    no_truth = blends.catalog.drop(columns=["cen_flux_true", "comp_flux_true"])
    from blendphot.blend import Blends
    from blendphot.errors import InputError
    with pytest.raises(InputError, match="catalog.csv: train.target 'truth' needs"):
        Blends(blends.images, blends.masks, no_truth, source="results/blend/val").require_fluxes("truth")
    with pytest.raises(ValueError, match="train.target must be one of"):
        TrainConfig(target="true")
