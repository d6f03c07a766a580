"""Join the catalogues, cut in magnitude and select the four morphological classes."""
from blendphot.select import run_select_galaxies
from blendphot.workflow import stage

with stage(snakemake) as run:
    inp, p = snakemake.input, snakemake.params
    catalog, selected, counts = run_select_galaxies(
        dict(snakemake.output.items()), settings=p.select, columns=p.columns,
        photometry=inp.get("photometry", []), morphology=inp.get("morphology", []), truth=inp.get("truth", []),
        stampset=inp.get("stampset"))
    run.log_metrics({"catalogue": len(catalog), "selected": len(selected),
                     **{f"selected_{r['class']}": r["selected"] for r in counts.to_dict("records")}})
    run.log_artifact(snakemake.output.counts)
