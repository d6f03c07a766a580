"""Import a ready stamp set (candels-blender Zenodo layout) as the clean stage's output."""
from blendphot.clean import CleanParams, qa_summary
from blendphot.stampset import import_stampset
from blendphot.workflow import stage, write_clean_outputs

with stage(snakemake) as run:
    p = snakemake.params
    images, masks, table, dropped = import_stampset(p.stamps, CleanParams(**p.clean), zeropoint=p.zeropoint,
                                                    pixel_scale=p.pixel_scale, workdir="results/survey/stamps")
    qa = qa_summary(table, dropped)
    write_clean_outputs(snakemake.output, images=images, originals=images, masks=masks, table=table,
                        dropped=dropped, qa=qa)
    run.log_metrics(qa)
