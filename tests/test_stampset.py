"""Ready stamp sets in the Zenodo layout: reading, checks, noise, and the cleaning they go through."""
import tarfile

import numpy as np
import pandas as pd
import pytest

from blendphot.clean import CleanParams, clean_stamps
from blendphot.errors import InputError
from blendphot.stampset import estimate_noise, open_stampset, read_stampset, stamp_weights, take_stamps, write_stampset
from tests.conftest import gaussian

SIGMA = 0.01


def _stamps(n=4, *, neighbour=True):
    """Stamps with a central Gaussian galaxy, a bright neighbour and white noise (sigma 0.01),
    the isolated central galaxy, and a segmentation in the published form (labels 3 and 9)."""
    rng = np.random.default_rng(0)
    central = np.stack([gaussian(128, 64, 64, 3.0, 20.0 + i) for i in range(n)])
    other = gaussian(128, 100, 30, 3.0, 30.0) if neighbour else np.zeros((128, 128))
    images = (central + other + rng.normal(0, SIGMA, (n, 128, 128))).astype(np.float32)
    seg = np.where(central > 0.02, 3, 0) + np.where(other > 0.02, 9, 0)
    return images, seg.astype(np.int32), central


def _write(root, n=4, **kw):
    images, seg, central = _stamps(n, **kw)
    cat = pd.DataFrame({"gid": [f"COSMOS-{i}" for i in range(n)], "field": "COSMOS", "id": range(n), "ra": 150.1,
                        "dec": 2.2, "mag": 22.0, "re_arcsec": 0.3,
                        "cls": ["bulge", "disk", "bulge_disk", "irregular"][:n]})
    write_stampset(root, images, seg, cat, pixel_scale=0.06)
    return images, seg, central


def test_written_layout_is_the_published_one(tmp_path):
    _write(tmp_path)
    cat = pd.read_csv(tmp_path / "candels_cat.csv")
    assert list(cat.columns) == ["ID", "RA", "DEC", "FIELD", "mag", "mag_err", "radius", "z", "galtype", "segval"]
    assert cat["FIELD"].iat[0] == "b'COSMOS    '" and (cat["mag_err"] == cat["mag"]).all()
    assert list(cat["galtype"]) == ["sph", "disk", "sphd", "irr"] and (cat["segval"] == 3).all()
    np.testing.assert_allclose(cat["radius"], 5.0)


def test_read_standardises_the_catalogue(tmp_path):
    images, seg, _ = _write(tmp_path)
    sset = read_stampset(tmp_path, pixel_scale=0.06)
    assert list(sset.catalog["gid"]) == [f"COSMOS-{i}" for i in range(4)]
    assert list(sset.catalog["cls"]) == ["bulge", "disk", "bulge_disk", "irregular"]
    np.testing.assert_allclose(sset.catalog["re_arcsec"], 0.3)
    np.testing.assert_array_equal(sset.images, images)
    np.testing.assert_array_equal(sset.segmentation, seg)


def test_archive_is_found_and_unpacked(tmp_path):
    _write(tmp_path / "candels-blender-data")
    archive = tmp_path / "candels-blender-data.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "candels-blender-data", arcname="candels-blender-data")
    with open_stampset(archive, scratch=tmp_path / "scratch") as root:
        assert len(read_stampset(root, pixel_scale=0.06).catalog) == 4
    assert list((tmp_path / "scratch").iterdir()) == []  # the unpacked copy is gone


def test_zip_archive_is_read(tmp_path):
    import zipfile

    _write(tmp_path / "set")
    with zipfile.ZipFile(tmp_path / "set.zip", "w") as archive:
        for f in ("candels_img.npy", "candels_seg.npy", "candels_cat.csv"):
            archive.write(tmp_path / "set" / f, f"set/{f}")
    with open_stampset(tmp_path / "set.zip", scratch=tmp_path / "scratch") as root:
        assert len(read_stampset(root, pixel_scale=0.06).catalog) == 4


def test_cut_archive_is_named(tmp_path):
    _write(tmp_path / "set")
    archive = tmp_path / "set.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "set", arcname="set")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(InputError, match="set.tar.gz: corrupt or truncated archive"):
        with open_stampset(archive, scratch=tmp_path / "scratch"):
            pass


def _set_cell(root, row, column, value):
    cat = pd.read_csv(root / "candels_cat.csv", dtype=str)
    cat.loc[row, column] = value
    cat.to_csv(root / "candels_cat.csv", index=False)


@pytest.mark.parametrize("damage, match", [
    (lambda root: pd.read_csv(root / "candels_cat.csv").assign(galtype="spiral").to_csv(root / "candels_cat.csv"),
     "candels_cat.csv: column 'galtype' has unknown value 'spiral'"),
    (lambda root: pd.read_csv(root / "candels_cat.csv").drop(columns="radius").to_csv(root / "candels_cat.csv"),
     "candels_cat.csv: missing column 'radius'"),
    (lambda root: np.save(root / "candels_img.npy", np.full((4, 128, 128), np.nan, np.float32)),
     "candels_img.npy: every pixel is NaN or infinite"),
    (lambda root: np.save(root / "candels_seg.npy", np.zeros((3, 128, 128), np.int32)),
     "candels_seg.npy: expected integer labels of shape"),
    (lambda root: pd.read_csv(root / "candels_cat.csv").head(3).to_csv(root / "candels_cat.csv"),
     "candels_cat.csv: 3 rows for 4 stamps"),
    # catalogue text that would name files outside results/ or reach the review page as markup
    (lambda root: _set_cell(root, 2, "FIELD", "../../x"),
     r"candels_cat.csv: data row 3, column 'FIELD': '../../x' is not a plain name"),
    (lambda root: _set_cell(root, 0, "ID", "<img src=x onerror=alert(1)>"),
     r"candels_cat.csv: data row 1, column 'ID': '<img src=x onerror=alert\(1\)>' is not a plain name"),
    (lambda root: _set_cell(root, 1, "FIELD", "/etc"), r"data row 2, column 'FIELD': '/etc' is not a plain name"),
    (lambda root: _set_cell(root, 3, "ID", ".."), r"data row 4, column 'ID': '..' is not a plain name"),
])
def test_bad_stampset_is_named(tmp_path, damage, match):
    _write(tmp_path)
    damage(tmp_path)
    with pytest.raises(InputError, match=match):
        read_stampset(tmp_path, pixel_scale=0.06)


def test_published_quirks_are_read(tmp_path):
    """bytes-like text in every column, float IDs and labels, a repeated galaxy, a NaN radius."""
    _, seg, _ = _write(tmp_path)
    cat = pd.read_csv(tmp_path / "candels_cat.csv")
    cat["galtype"] = [repr(g.encode()) for g in cat["galtype"]]  # b'sph'
    cat["ID"] = cat["ID"].astype(float)
    cat.loc[3, "ID"] = 2.0  # the same galaxy as row 2
    cat.loc[1, "radius"] = np.nan
    cat.to_csv(tmp_path / "candels_cat.csv", index=False)
    np.save(tmp_path / "candels_seg.npy", seg.astype(np.float32))
    sset = read_stampset(tmp_path, pixel_scale=0.06)
    assert list(sset.catalog["gid"]) == ["COSMOS-0", "COSMOS-1", "COSMOS-2"]
    assert list(sset.catalog["cls"]) == ["bulge", "disk", "bulge_disk"]
    assert sset.segmentation.dtype == np.int32 and len(sset.images) == 3
    from blendphot.select import select_classified

    assert list(select_classified(sset.catalog, mag_max=23.5)["gid"]) == ["COSMOS-0", "COSMOS-2"]


def test_missing_stampset_is_named(tmp_path):
    with pytest.raises(InputError, match="nothing: stamp set not found"):
        with open_stampset(tmp_path / "nothing"):
            pass
    with pytest.raises(InputError, match="no stamp set found"):
        with open_stampset(tmp_path):
            pass


def test_noise_is_measured_robustly_from_the_stamp():
    images, seg, _ = _stamps(4)
    for k in range(4):
        assert estimate_noise(images[k], seg[k]) == pytest.approx(SIGMA, rel=0.03)
        assert estimate_noise(images[k]) == pytest.approx(SIGMA, rel=0.05)  # clipping alone


def test_zero_regions_are_missing_data_but_single_zeros_are_not():
    images, seg, _ = _stamps(2)
    images[0, :, :10] = 0.0  # a stamp cut at the mosaic's edge
    images[1, 5, 5] = 0.0    # one exact zero: noise
    weights, sigma = stamp_weights(images, seg)
    assert (weights[0, :, :10] == 0).all() and (weights[0, :, 10:] > 0).all()
    assert (weights[1] > 0).all()
    np.testing.assert_allclose(weights[1, 0, 0], 1 / sigma[1] ** 2)


def test_take_stamps_keeps_the_selection_and_drops_missing_data(tmp_path):
    _write(tmp_path)
    sset = read_stampset(tmp_path, pixel_scale=0.06)
    sset.images[2, :, :20] = 0.0
    sset.images[1, 50, 50] = np.nan
    selected = sset.catalog.iloc[[3, 2, 0, 1]]
    taken = take_stamps(sset.images, sset.segmentation, sset.catalog, selected, size=128)
    assert list(taken.catalog["gid"]) == ["COSMOS-3", "COSMOS-0"]
    assert list(taken.dropped["reason"]) == ["missing_data", "nan_pixels"]
    assert np.isfinite(taken.images).all()
    np.testing.assert_array_equal(taken.images[0], sset.images[3])
    with pytest.raises(InputError, match="config key 'stamps.size' is 64"):
        take_stamps(sset.images, sset.segmentation, sset.catalog, selected, size=64)


@pytest.mark.parametrize("given", [False, True])
def test_neighbours_are_removed_from_published_stamps(tmp_path, given):
    """The published stamps hold their neighbours: cleaning removes them, with sep's own
    segmentation or the set's, and the isolated flux is the central galaxy's."""
    _write(tmp_path)
    sset = read_stampset(tmp_path, pixel_scale=0.06)
    weights, _ = stamp_weights(sset.images, sset.segmentation)
    c = clean_stamps(
        sset.images, weights, sset.catalog, CleanParams(), seed=1, zeropoint=25.9463,
        segmentations=sset.segmentation if given else None, progress=False)
    cleaned, originals, masks, table, dropped = c.images, c.originals, c.masks, c.catalog, c.dropped
    assert len(table) == 4 and not len(dropped)
    assert (table["n_sources_after"] == 1).all()
    np.testing.assert_allclose(table["flux_auto"], [20, 21, 22, 23], rtol=0.05)
    around = np.s_[:, 20:40, 90:110]  # the neighbour's place: background only now
    assert np.abs(cleaned[around] - 0).max() < 6 * SIGMA < np.abs(originals[around]).max()
    if given:
        np.testing.assert_array_equal(masks, sset.segmentation == 3)


def _tar_with(archive, add):
    with tarfile.open(archive, "w:gz") as tar:
        add(tar)


def _member(tar, name, data=b"x", **kw):
    import io as _io

    info = tarfile.TarInfo(name)
    for key, value in kw.items():
        setattr(info, key, value)
    info.size = 0 if info.issym() else len(data)
    tar.addfile(info, None if info.issym() else _io.BytesIO(data))


@pytest.mark.parametrize(("add", "why"), [
    (lambda tar: _member(tar, "set/../../escaped.txt"), r"member 'set/../../escaped.txt' would be written outside"),
    (lambda tar: _member(tar, "set/candels_img.npy", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
     r"member 'set/candels_img.npy' is a link that points outside the archive"),
])
def test_a_hostile_archive_is_refused_and_said_so(tmp_path, add, why):
    """An archive with a member that leaves its folder or links out of it is refused (not
    reported as corrupt), and nothing is unpacked anywhere."""
    archive = tmp_path / "set.tar.gz"
    _tar_with(archive, add)
    with pytest.raises(InputError, match=rf"set.tar.gz: archive refused, nothing unpacked from it: {why}"):
        with open_stampset(archive, scratch=tmp_path / "scratch"):
            pass
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["scratch", "set.tar.gz"]
