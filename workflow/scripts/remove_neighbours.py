"""Remove the neighbours on every stamp and measure the isolated galaxies."""
import numpy as np
import pandas as pd

from blendphot import io
from blendphot.clean import CleanParams, clean_stamps, qa_summary
from blendphot.workflow import stage, write_clean_outputs

with stage(snakemake) as run:
    inp, p = snakemake.input, snakemake.params
    images = np.concatenate([io.load_array(f, mmap=False) for f in inp.images])
    weights = np.concatenate([io.load_array(f, mmap=False) for f in inp.weights])
    catalog = pd.concat([io.read_csv(f) for f in inp.catalogs], ignore_index=True)
    given = np.concatenate([io.load_array(f, mmap=False) for f in inp.segmentations]) if inp.segmentations else None
    cleaned, originals, masks, table, dropped = clean_stamps(
        images, weights, catalog, CleanParams(**p.clean), seed=p.seed, zeropoint=p.zeropoint, segmentations=given)
    qa = qa_summary(table, dropped)
    write_clean_outputs(snakemake.output, images=cleaned, originals=originals, masks=masks, table=table,
                        dropped=dropped, qa=qa)
    run.log_metrics(qa)
    run.log_artifact(snakemake.output.qa)
