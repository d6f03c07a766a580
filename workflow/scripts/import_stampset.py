"""Import a ready stamp set (candels-blender Zenodo layout) into the survey stage's form."""
from pathlib import Path

from blendphot import io
from blendphot.stampset import open_stampset, read_stampset
from blendphot.workflow import stage

with stage(snakemake) as run:
    out = snakemake.output
    with open_stampset(snakemake.input[0], scratch=Path(out.catalog).parent) as root:
        stampset = read_stampset(root, pixel_scale=snakemake.params.pixel_scale)
    io.save_array(out.images, stampset.images)
    io.save_array(out.segmentation, stampset.segmentation)
    io.write_csv(out.catalog, stampset.catalog)
    run.log_metrics({"stamps": len(stampset.catalog),
                     **{f"stamps_{k}": v for k, v in stampset.catalog["cls"].value_counts().items()}})
