import numpy as np
import pandas as pd
import pytest

from blendphot.blend import compose, draw_companions, make_blends
from blendphot.split import split_galaxies

KW = dict(max_mag_diff=2.0, min_shift_re=0.5, max_shift=32, pixel_scale=0.06)


def _slow_compose(images, masks, cen, comp, dx, dy):
    n, s = len(cen), images.shape[-1]
    out = np.zeros((n, s, s), np.float32)
    out_m = np.zeros((n, 2, s, s), np.uint8)
    for i in range(n):
        out[i] = images[cen[i]]
        out_m[i, 0] = masks[cen[i]]
        for y in range(s):
            for x in range(s):
                ys, xs = y - dy[i], x - dx[i]
                if 0 <= ys < s and 0 <= xs < s:
                    out[i, y, x] += images[comp[i], ys, xs]
                    out_m[i, 1, y, x] = masks[comp[i], ys, xs]
    return out, out_m


def test_compose_matches_slow_reference():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(5, 16, 16)).astype(np.float32)
    masks = (images > 0).astype(np.uint8)
    cen, comp = np.array([0, 1, 2, 3]), np.array([4, 3, 0, 1])
    dx, dy = np.array([3, -5, 0, 15]), np.array([-2, 7, -15, 1])
    fast = compose(images, masks, cen, comp, dx, dy, chunk=3)
    slow = _slow_compose(images, masks, cen, comp, dx, dy)
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])


def test_companions_within_dmag_and_never_self():
    rng = np.random.default_rng(1)
    mag = rng.uniform(19, 24, 200)
    cen = rng.integers(0, 200, 5000)
    ok = np.array([((np.abs(mag - mag[c]) < 2).sum() > 1) for c in cen])
    cen = cen[ok]
    comp = draw_companions(rng, mag, cen, 2.0)
    assert (np.abs(mag[comp] - mag[cen]) < 2).all() and (comp != cen).all()


@pytest.mark.parametrize("rule", ["paper", "candels_blender"])
def test_blends_are_bit_reproducible_and_obey_the_rule(pool, rule):
    images, masks, cat = pool
    a = make_blends(images, masks, cat, 300, rule=rule, rng=np.random.default_rng(9), **KW)
    b = make_blends(images, masks, cat, 300, rule=rule, rng=np.random.default_rng(9), **KW)
    assert a.images.tobytes() == b.images.tobytes() and a.masks.tobytes() == b.masks.tobytes()
    pd.testing.assert_frame_equal(a.catalog, b.catalog)
    c = a.catalog
    assert (c.cen_gid != c.comp_gid).all() and (c.mag_diff.abs() < 2).all()
    r = np.maximum(c.cen_re_px, c.comp_re_px)
    if rule == "paper":
        assert (c.dx.abs() >= np.floor(0.5 * r)).all() and (c.dy.abs() >= np.floor(0.5 * r)).all()
        assert (c.dx.abs() <= 32).all() and (c.dy.abs() <= 32).all()
    else:
        r_max = np.minimum(4 * np.minimum(c.cen_re_px, c.comp_re_px), 32)
        r_min = np.where(r >= r_max, 0.8 * r_max, r)  # the public tool's fallback when r_min >= r_max
        assert (c.distance_px <= r_max + 1e-9).all()
        assert (c.distance_px >= r_min - 1e-9).all()  # never closer than the larger galaxy's radius
        assert (r < r_max).any() and (r >= r_max).any()  # both branches of the rule are exercised
    # a blend is the sum of its two stamps: flux adds up (companion partly shifted out is allowed)
    assert a.images.sum(axis=(1, 2)).max() <= 20.0 + 1e-3


def test_split_is_galaxy_level_and_blends_do_not_leak(pool):
    images, masks, cat = pool
    split = split_galaxies(cat, {"train": 0.6, "val": 0.2, "test": 0.2}, rng=np.random.default_rng(2))
    assert split.gid.is_unique and set(split.split) == {"train", "val", "test"}
    used = {}
    for name in ("train", "val", "test"):
        rows = np.flatnonzero(split.split == name)
        b = make_blends(images[rows], masks[rows], cat.iloc[rows].reset_index(drop=True), 100, rule="paper",
                        rng=np.random.default_rng(3), split=name, **KW)
        used[name] = set(b.catalog.cen_gid) | set(b.catalog.comp_gid)
    assert not used["test"] & (used["train"] | used["val"])
    assert not used["train"] & used["val"]


def test_split_fractions_and_test_first(pool):
    _, _, cat = pool
    a = split_galaxies(cat, {"train": 0.6, "val": 0.2, "test": 0.2}, rng=np.random.default_rng(4), stratify=False)
    assert (a.split == "test").sum() == 8 and (a.split == "val").sum() == 8
    b = split_galaxies(cat, {"train": 0.4, "val": 0.4, "test": 0.2}, rng=np.random.default_rng(4), stratify=False)
    # test galaxies are drawn first: changing the train/val balance leaves the test set alone
    assert set(a.gid[a.split == "test"]) == set(b.gid[b.split == "test"])


def test_blends_written_into_memmaps_match_in_memory(pool, tmp_path):
    from blendphot import io

    images, masks, cat = pool
    ref = make_blends(images, masks, cat, 50, rule="paper", rng=np.random.default_rng(1), **KW)
    with io.create_array(tmp_path / "i.npy", (50, 64, 64), np.float32) as oi, \
            io.create_array(tmp_path / "m.npy", (50, 2, 64, 64), np.uint8) as om:
        make_blends(images, masks, cat, 50, rule="paper", rng=np.random.default_rng(1), out_images=oi,
                    out_masks=om, **KW)
    assert np.load(tmp_path / "i.npy").tobytes() == ref.images.tobytes()
    assert np.load(tmp_path / "m.npy").tobytes() == ref.masks.tobytes()


def test_failed_write_leaves_no_file(tmp_path):
    from blendphot import io

    with pytest.raises(RuntimeError):
        with io.create_array(tmp_path / "i.npy", (4, 8, 8), np.float32):
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_pool_without_companions_is_a_named_error(pool):
    from blendphot.errors import InputError

    images, masks, cat = pool
    cat = cat.assign(mag_auto=np.arange(len(cat)) * 5.0)  # 5 mag apart: nobody within 2 mag
    with pytest.raises(InputError, match="split 'test': no galaxy has a companion"):
        make_blends(images, masks, cat, 10, rule="paper", rng=np.random.default_rng(0), split="test", **KW)
