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
    assert dict(zip(stamps.dropped.gid, stamps.dropped.reason)) == {"g1": "mosaic_edge", "g2": "missing_data"}
    # the stamp's WCS puts the galaxy on its central pixel
    sw = w.deepcopy()
    sw.wcs.crpix = [stamps.catalog.crpix1[0], stamps.catalog.crpix2[0]]
    x, y = sw.all_world2pix(cat.ra[0], cat.dec[0], 0)
    assert abs(x - 64) < 0.51 and abs(y - 64) < 0.51


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
