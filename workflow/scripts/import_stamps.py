"""Import a ready stamp set (candels-blender Zenodo layout) as the clean stage's output."""
from blendphot import io
from blendphot.clean import CleanParams, qa_summary
from blendphot.stampset import import_stampset
from blendphot.workflow import stage

with stage(snakemake) as run:
    out, p = snakemake.output, snakemake.params
    result = import_stampset(p.stamps, CleanParams(**p.clean), zeropoint=p.zeropoint,
                             pixel_scale=p.pixel_scale, workdir="results/survey/stamps")
    images, masks, table, dropped = result
    qa = qa_summary(table, dropped)
    io.save_array(out.images, images)
    io.save_array(out.originals, images)
    io.save_array(out.masks, masks)
    io.write_csv(out.catalog, table)
    io.write_csv(out.dropped, dropped)
    io.write_json(out.qa, qa)
    run.log_metrics(qa)
