"""Write the inspection gallery, the manifest with automatic decisions, and the review page."""
from pathlib import Path

from blendphot.inspect import run_build_inspection
from blendphot.workflow import stage

with stage(snakemake) as run:
    out = snakemake.output
    manifest = run_build_inspection(Path(snakemake.input.catalog).parent, dict(out.items()),
                                    reject_flags=snakemake.params.inspect["reject_flags"])
    run.log_metrics({"galaxies": len(manifest), "auto_rejected": int((manifest["decision"] == "reject").sum())})
    run.log_artifact(out.manifest)
