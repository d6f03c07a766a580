"""Download one survey file (resumable, retried, verified by checksum)."""
from blendphot.download import download, sha256sum
from blendphot.workflow import stage

with stage(snakemake) as run:
    remote = snakemake.params.remote
    path = download(remote["url"], snakemake.output[0], sha256=remote.get("sha256"))
    if not remote.get("sha256"):
        print(f"no checksum configured for {remote['url']}; sha256 of the file: {sha256sum(path)}")
    run.log_metrics({"bytes": path.stat().st_size})
