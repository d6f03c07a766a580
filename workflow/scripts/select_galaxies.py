"""Join the catalogues, cut in magnitude and select the four morphological classes."""
from pathlib import Path

import pandas as pd

from blendphot import io, select
from blendphot.workflow import stage


def read_catalog(path):
    return io.read_csv(path) if Path(path).suffix == ".csv" else io.read_fits_table(path)


with stage(snakemake) as run:
    inp, p = snakemake.input, snakemake.params
    phot = pd.concat([read_catalog(f) for f in inp.photometry], ignore_index=True)
    morph = pd.concat([read_catalog(f) for f in inp.morphology], ignore_index=True)
    sources = (", ".join(inp.photometry), ", ".join(inp.morphology))
    catalog = select.join_catalogs(phot, morph, p.columns, sources=sources)
    if "truth" in inp.keys():  # mock survey: carry the generator's true flux along
        truth = pd.concat([io.read_csv(f) for f in inp.truth], ignore_index=True)
        catalog = select.attach_truth(catalog, phot, truth)
    selected = select.select_galaxies(catalog, mag_max=p.select["mag_max"], p_min=p.select["p_min"])
    counts = select.count_table(selected)
    io.write_csv(snakemake.output.catalog, selected)
    io.write_csv(snakemake.output.counts, counts)
    run.log_metrics({"catalogue": len(catalog), "selected": len(selected),
                     **{f"selected_{r['class']}": r["selected"] for r in counts.to_dict("records")}})
    run.log_artifact(snakemake.output.counts)
