"""Write the inspection gallery, the manifest with automatic decisions, and the review page."""
from pathlib import Path

from blendphot import inspect, io
from blendphot.workflow import stage

with stage(snakemake) as run:
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    catalog = io.read_csv(inp.catalog, required=["gid", "cls", "mag_auto", "qa_flags"])
    names = inspect.write_gallery(io.load_array(inp.originals), io.load_array(inp.images),
                                  io.load_array(inp.masks), catalog["gid"].tolist(), out.gallery)
    decisions = inspect.auto_decisions(catalog, p.inspect["reject_flags"])
    manifest = catalog[["gid", "cls", "mag_auto", "re_arcsec", "qa_flags"]].rename(columns={"gid": "id"})
    manifest = manifest.assign(decision=decisions["decision"], reason=decisions["reason"], image=names)
    io.write_csv(out.manifest, manifest)
    html = inspect.render_page(manifest.fillna({"qa_flags": ""}), Path(out.gallery).name)
    with io.atomic_path(out.page, ".html") as tmp:
        tmp.write_text(html)
    run.log_metrics({"galaxies": len(manifest), "auto_rejected": int((decisions["decision"] == "reject").sum())})
    run.log_artifact(out.manifest)
