"""Download one survey file (resumable, retried, verified by checksum)."""
from blendphot.download import WebPageError, download, sha256sum
from blendphot.errors import InputError
from blendphot.workflow import stage

with stage(snakemake) as run:
    remote, key = snakemake.params.remote, snakemake.params.key
    try:
        path = download(remote["url"], snakemake.output[0], sha256=remote.get("sha256"))
    except WebPageError as exc:
        raise InputError(f"config key '{key}.url': {exc}. "
                         + (snakemake.params.get("help") or "Check the URL in a browser.")) from None
    if not remote.get("sha256"):
        print(f"no checksum configured for {remote['url']} ({key}); sha256 of the file: {sha256sum(path)}")
    run.log_metrics({"bytes": path.stat().st_size})
