"""Download one survey file (resumable, retried, verified by checksum)."""
from blendphot.download import run_download_file
from blendphot.workflow import stage

with stage(snakemake) as run:
    p = snakemake.params
    path = run_download_file(p.remote, snakemake.output[0], key=p.key, help=p.get("help"))
    run.log_metrics({"bytes": path.stat().st_size})
