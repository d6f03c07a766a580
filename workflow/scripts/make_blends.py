"""Make the blends of one split, written chunk by chunk into memory-mapped .npy files."""
import time

import numpy as np

from blendphot import io
from blendphot.blend import make_blends
from blendphot.config import child_seed
from blendphot.workflow import stage

with stage(snakemake) as run:
    inp, out, p, split = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards.split
    catalog = io.read_csv(inp.catalog, required=["gid", "cls", "mag_auto", "flux_auto", "re_arcsec"])
    galaxies = io.read_csv(inp.galaxies, required=["gid", "split"])
    rows = np.flatnonzero(catalog["gid"].isin(galaxies.loc[galaxies["split"] == split, "gid"]).to_numpy())
    pool = catalog.iloc[rows].reset_index(drop=True)
    images = io.load_array(inp.images)[rows]  # reads this split's stamps only
    masks = io.load_array(inp.masks)[rows]
    b, n = p.blend, p.blend["n_blends"][split]
    size = images.shape[-1]
    with io.create_array(out.images, (n, size, size), np.float32) as out_images, \
            io.create_array(out.masks, (n, 2, size, size), np.uint8) as out_masks:
        start = time.perf_counter()
        blends = make_blends(images, masks, pool, n, rule=b["rule"], max_dmag=b["max_dmag"],
                             min_shift_re=b["min_shift_re"], max_shift=b["max_shift"], pixel_scale=p.pixel_scale,
                             rng=np.random.default_rng(child_seed(p.seed, f"blend_{split}")), split=split,
                             out_images=out_images, out_masks=out_masks)
        elapsed = time.perf_counter() - start
    io.write_csv(out.catalog, blends.catalog)
    run.log_metrics({"blends": n, "pool_galaxies": len(pool), "blends_per_s": n / max(elapsed, 1e-9),
                     "median_distance_px": float(blends.catalog["distance_px"].median())})
