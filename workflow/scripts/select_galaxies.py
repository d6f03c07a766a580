"""Join the catalogues, cut in magnitude and select the four morphological classes."""
from pathlib import Path

import pandas as pd

from blendphot import io, select
from blendphot.errors import InputError
from blendphot.workflow import stage


def read_catalog(path):
    return io.read_csv(path) if Path(path).suffix == ".csv" else io.read_fits_table(path)


def select_from_mosaic_catalogs(inp, p):
    phot = pd.concat([read_catalog(f) for f in inp.photometry], ignore_index=True)
    morph = pd.concat([read_catalog(f) for f in inp.morphology], ignore_index=True)
    sources = (", ".join(inp.photometry), ", ".join(inp.morphology))
    catalog = select.join_catalogs(phot, morph, p.columns, sources=sources)
    if "truth" in inp.keys():  # mock survey: carry the generator's true flux along
        truth = pd.concat([io.read_csv(f) for f in inp.truth], ignore_index=True)
        catalog = select.attach_truth(catalog, phot, truth)
    return catalog, select.select_galaxies(catalog, mag_max=p.select["mag_max"], p_min=p.select["p_min"])


with stage(snakemake) as run:
    inp, p = snakemake.input, snakemake.params
    if "stampset" in inp.keys():
        catalog = io.read_csv(inp.stampset)
        selected = select.select_classified(catalog, mag_max=p.select["mag_max"])
    else:
        catalog, selected = select_from_mosaic_catalogs(inp, p)
    if not len(selected):
        raise InputError(f"no galaxy passes the selection (select.mag_max = {p.select['mag_max']}, "
                         f"select.p_min = {p.select['p_min']}) among the {len(catalog)} catalogue galaxies")
    counts = select.count_table(selected)
    io.write_csv(snakemake.output.catalog, selected)
    io.write_csv(snakemake.output.counts, counts)
    run.log_metrics({"catalogue": len(catalog), "selected": len(selected),
                     **{f"selected_{r['class']}": r["selected"] for r in counts.to_dict("records")}})
    run.log_artifact(snakemake.output.counts)
