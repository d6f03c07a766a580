import tarfile

import numpy as np
import pandas as pd
import pytest

from blendphot.clean import CleanParams
from blendphot.errors import InputError
from blendphot.stampset import import_stampset
from tests.conftest import gaussian


def _write_stampset(root, n=4):
    rng = np.random.default_rng(0)
    images = np.stack([gaussian(128, 64, 64, 3.0, 20.0 + i) + rng.normal(0, 0.01, (128, 128))
                       for i in range(n)]).astype(np.float32)
    seg = (np.stack([gaussian(128, 64, 64, 3.0, 20.0)] * n) > 0.02).astype(np.int32) * 7
    seg[1] = 0  # no central segment: dropped with a reason
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "candels_img.npy", images)
    np.save(root / "candels_seg.npy", seg)
    pd.DataFrame({"ID": range(n), "RA": 53.0, "DEC": -27.8, "FIELD": ["b'GDS'"] * n, "mag": 22.0,
                  "mag_err": 22.0, "radius": 5.0, "z": 1.0, "galtype": ["sph", "disk", "sphd", "irr"][:n],
                  "segval": 7}).to_csv(root / "candels_cat.csv", index=False)


def test_import_from_a_local_path(tmp_path):
    _write_stampset(tmp_path / "set")
    images, masks, table, dropped = import_stampset({"path": str(tmp_path / "set")}, CleanParams(),
                                                    zeropoint=25.9463, pixel_scale=0.06)
    assert list(table.gid) == ["GDS-0", "GDS-2", "GDS-3"]
    assert list(table.cls) == ["bulge", "bulge_disk", "irregular"]
    assert list(dropped.reason) == ["central_not_in_segmentation"]
    assert images.shape == masks.shape == (3, 128, 128)
    np.testing.assert_allclose(table.flux_auto, [20, 22, 23], rtol=0.05)


def test_import_from_a_tarball_url(tmp_path):
    _write_stampset(tmp_path / "candels-blender-data")
    archive = tmp_path / "candels-blender-data.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "candels-blender-data", arcname="candels-blender-data")
    images, *_ = import_stampset({"url": archive.as_uri()}, CleanParams(), zeropoint=25.9463,
                                 pixel_scale=0.06, workdir=tmp_path / "work")
    assert len(images) == 3


def test_bad_stampset_is_named(tmp_path):
    _write_stampset(tmp_path / "set")
    cat = pd.read_csv(tmp_path / "set/candels_cat.csv")
    cat.loc[0, "galtype"] = "spiral"
    cat.to_csv(tmp_path / "set/candels_cat.csv", index=False)
    with pytest.raises(InputError, match="candels_cat.csv: column 'galtype' has unknown value 'spiral'"):
        import_stampset({"path": str(tmp_path / "set")}, CleanParams(), zeropoint=25.9, pixel_scale=0.06)
    with pytest.raises(InputError, match="no stamp set found"):
        import_stampset({"path": str(tmp_path)+"/nothing"}, CleanParams(), zeropoint=25.9, pixel_scale=0.06)
