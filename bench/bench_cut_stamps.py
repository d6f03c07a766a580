"""Memory of the stamps stage on a CANDELS-sized mosaic: is it bounded by memory maps?

    python bench/bench_cut_stamps.py [--nx 40500 --ny 32400] [--galaxies 2000] [--dir /scratch]

Writes a synthetic float32 mosaic and weight map of the given size (GOODS-S: 40500 x 32400,
5.2 GB each) as big-endian FITS with a TAN WCS, as MAST serves them, then cuts 128 x 128
stamps around random positions with the stamps stage's own code in a child process and
reports its wall time and maximum resident memory (the profile's `cut_stamps: mem_mb` is
set from it). The files are deleted at the end unless --keep.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = """
import sys, numpy as np, pandas as pd
from blendphot.stamps import cut_stamps, open_mosaic
image_path, weight_path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
hi, image, wcs = open_mosaic(image_path)
hw, weight, _ = open_mosaic(weight_path)
rng = np.random.default_rng(0)
ny, nx = image.shape
x, y = rng.uniform(100, nx - 100, n), rng.uniform(100, ny - 100, n)
ra, dec = wcs.all_pix2world(x, y, 0)
cat = pd.DataFrame({"gid": [f"G-{i}" for i in range(n)], "ra": ra, "dec": dec})
with hi, hw:
    stamps = cut_stamps(image, weight, wcs, cat, size=128)
print(len(stamps.catalog), "stamps", stamps.images.nbytes / 1e6, "MB of stamps")
"""


def write_mosaic(path: Path, nx: int, ny: int, *, fill: str) -> None:
    """A float32 FITS image written row block by row block (never whole in memory)."""
    from astropy.io import fits
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [53.12, -27.81]
    wcs.wcs.crpix = [nx / 2, ny / 2]
    wcs.wcs.cdelt = [-0.06 / 3600, 0.06 / 3600]
    header = fits.Header({"SIMPLE": True, "BITPIX": -32, "NAXIS": 2, "NAXIS1": nx, "NAXIS2": ny})
    header.update(wcs.to_header())
    rng = np.random.default_rng(1)
    with fits.StreamingHDU(path, header) as hdu:
        for y0 in range(0, ny, 512):
            rows = min(512, ny - y0)
            block = (rng.normal(0, 0.005, (rows, nx)) if fill == "noise" else np.full((rows, nx), 4e4))
            hdu.write(block.astype(">f4"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nx", type=int, default=40500)
    parser.add_argument("--ny", type=int, default=32400)
    parser.add_argument("--galaxies", type=int, default=2000)
    parser.add_argument("--dir", default=None, help="where to write the mosaics (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        image, weight = Path(tmp) / "drz.fits", Path(tmp) / "wht.fits"
        t0 = time.perf_counter()
        write_mosaic(image, args.nx, args.ny, fill="noise")
        write_mosaic(weight, args.nx, args.ny, fill="weight")
        size = (image.stat().st_size + weight.stat().st_size) / 1e9
        print(f"wrote a {args.nx} x {args.ny} mosaic and weight map ({size:.2f} GB) in "
              f"{time.perf_counter() - t0:.0f} s")
        # Drop the page cache's copy where possible, so that reading really goes to disk.
        subprocess.run(["sh", "-c", "sync; echo 1 > /proc/sys/vm/drop_caches"], stderr=subprocess.DEVNULL)
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, str(image), str(weight), str(args.galaxies)],
                             check=True, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(out.stdout.strip())
        print(f"cut {args.galaxies} stamps in {wall:.1f} s; max RSS of the stamps stage {rss:.0f} MB "
              f"(mosaic + weight on disk: {size * 1e3:.0f} MB)")
        if args.keep:
            input(f"files kept in {tmp}; press Enter to delete them")


if __name__ == "__main__":
    main()
