"""Import a ready stamp set (candels-blender Zenodo layout) into the survey stage's form."""
from blendphot.stampset import run_import_stampset
from blendphot.workflow import stage

with stage(snakemake) as run:
    stampset = run_import_stampset(snakemake.input[0], dict(snakemake.output.items()),
                                   pixel_scale=snakemake.params.pixel_scale)
    run.log_metrics({"stamps": len(stampset.catalog),
                     **{f"stamps_{k}": v for k, v in stampset.catalog["cls"].value_counts().items()}})
