import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from blendphot.errors import InputError
from blendphot.io import read_fits_image, read_fits_table
from blendphot.stamps import cut_stamps, open_mosaic


def _wcs(n):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [53.0, -27.8]
    w.wcs.crpix = [n / 2, n / 2]
    w.wcs.cdelt = [-0.06 / 3600, 0.06 / 3600]
    return w


def test_corrupt_fits_names_the_file(tmp_path):
    path = tmp_path / "mosaic.fits"
    fits.PrimaryHDU(np.zeros((64, 64), ">f4")).writeto(path)
    path.write_bytes(path.read_bytes()[:3000])  # truncated mid-header/data
    with pytest.raises(InputError, match="mosaic.fits"):
        read_fits_image(path)
    garbage = tmp_path / "garbage.fits"
    garbage.write_bytes(b"not a fits file at all" * 100)
    with pytest.raises(InputError, match="garbage.fits"):
        open_mosaic(garbage)
    with pytest.raises(InputError, match="garbage.fits"):
        read_fits_table(garbage)


def test_big_endian_is_converted(tmp_path):
    path = tmp_path / "be.fits"
    fits.PrimaryHDU(np.arange(16, dtype=">f4").reshape(4, 4)).writeto(path)
    data, _ = read_fits_image(path)
    assert data.dtype.byteorder in ("=", "<") and data[1, 1] == 5


def _catalog(w, pixels):
    ra, dec = w.all_pix2world([p[0] for p in pixels], [p[1] for p in pixels], 0)
    return pd.DataFrame({"gid": [f"g{i}" for i in range(len(pixels))], "ra": ra, "dec": dec})


def test_stamps_centre_edge_and_missing_data():
    n = 512
    w = _wcs(n)
    image = np.zeros((n, n), np.float32)
    image[200, 300] = 1.0
    weight = np.ones((n, n), np.float32)
    weight[:, 450:] = 0  # uncovered strip
    cat = _catalog(w, [(300, 200), (20, 200), (420, 300)])
    stamps = cut_stamps(image, weight, w, cat, size=128)
    assert list(stamps.catalog.gid) == ["g0"]
    assert stamps.images[0][64, 64] == 1.0
    reasons = dict(zip(stamps.dropped.gid, stamps.dropped.reason, strict=True))
    assert reasons == {"g1": "mosaic_edge", "g2": "missing_data"}
    # the stamp's WCS puts the galaxy on its central pixel
    sw = w.deepcopy()
    sw.wcs.crpix = [stamps.catalog.crpix1[0], stamps.catalog.crpix2[0]]
    x, y = sw.all_world2pix(cat.ra[0], cat.dec[0], 0)
    assert abs(x - 64) < 0.51 and abs(y - 64) < 0.51


def test_a_weight_map_of_another_shape_is_named():
    w = _wcs(256)
    with pytest.raises(InputError, match=r"^wht.fits: weight map of shape \(200, 256\), but drz.fits is \(256, 256\)$"):
        cut_stamps(np.zeros((256, 256), np.float32), np.ones((200, 256), np.float32), w, _catalog(w, [(128, 128)]),
                   size=64, image_name="drz.fits", weight_name="wht.fits")


def test_nan_region_inside_footprint_stops_with_file_name():
    n = 512
    w = _wcs(n)
    image = np.zeros((n, n), np.float32)
    image[190:210, 290:310] = np.nan
    weight = np.ones((n, n), np.float32)
    with pytest.raises(InputError, match=r"mosaic_drz.fits: 400 NaN/inf pixels .*x=290..309"):
        cut_stamps(image, weight, w, _catalog(w, [(300, 200)]), size=128, image_name="mosaic_drz.fits")
    # NaN where the weight is zero is missing data, not corruption
    weight[150:250, 250:350] = 0
    stamps = cut_stamps(image, weight, w, _catalog(w, [(300, 200)]), size=128, max_missing_fraction=0.9)
    assert np.isfinite(stamps.images).all() and len(stamps.catalog) == 1


@pytest.mark.parametrize("dtype, header", [(">f4", {}), (">f8", {"EXTNAME": "SCI"}), (">i2", {"BZERO": 32768})])
def test_windows_of_a_mosaic_file_equal_astropy_reads(tmp_path, dtype, header):
    """Stamps cut from the file by positional reads are those of astropy's whole-image read,
    for plain images (a primary or an extension HDU) and scaled ones (memory-map fallback)."""
    n = 300
    w = _wcs(n)
    data = np.random.default_rng(1).normal(100, 30, (n, n + 17)).astype(dtype)
    path = tmp_path / "mosaic.fits"
    hdr = w.to_header()
    if "EXTNAME" in header:
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header=hdr, name="SCI")]).writeto(path)
    else:
        hdu = fits.PrimaryHDU(data, header=hdr)
        if "BZERO" in header:
            hdu.scale("int16", bzero=32768)
        hdu.writeto(path)
    reference, _ = read_fits_image(path, dtype=np.float64)
    handle, mosaic, wcs = open_mosaic(path)
    with handle:
        assert mosaic.shape == reference.shape
        cat = _catalog(wcs, [(100, 80), (200, 230), (64, 64)])
        stamps = cut_stamps(mosaic, np.ones(mosaic.shape, np.float32), wcs, cat, size=64)
    assert len(stamps.catalog) == 3
    for k, (x, y) in enumerate([(100, 80), (200, 230), (64, 64)]):
        np.testing.assert_array_equal(stamps.images[k], reference[y - 32:y + 32, x - 32:x + 32].astype(np.float32))


def test_truncated_mosaic_is_named_before_cutting(tmp_path):
    path = tmp_path / "mosaic_drz.fits"
    fits.PrimaryHDU(np.zeros((512, 512), ">f4"), header=_wcs(512).to_header()).writeto(path)
    path.write_bytes(path.read_bytes()[: 2880 + 512 * 4 * 300])  # a download cut mid-image
    with pytest.raises(InputError, match="mosaic_drz.fits: .* bytes, but its 512 x 512 image needs .*truncated"):
        open_mosaic(path)


def test_json_is_strict(tmp_path):
    import json

    from blendphot.io import write_json

    write_json(tmp_path / "qa.json", {"a": float("nan"), "b": [1.0, np.inf], "c": np.float32(2.5)})
    assert json.loads((tmp_path / "qa.json").read_text(), parse_constant=pytest.fail) == {"a": None,
                                                                                           "b": [1.0, None], "c": 2.5}
