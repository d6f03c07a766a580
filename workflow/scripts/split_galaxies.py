"""Apply the inspection decisions and split the accepted galaxies by galaxy."""
from blendphot.split import run_split_galaxies
from blendphot.workflow import stage

with stage(snakemake) as run:
    inp, p = snakemake.input, snakemake.params
    final, galaxies, _ = run_split_galaxies(inp.manifest, inp.catalog, dict(snakemake.output.items()),
                                            settings=p.split, seed=p.seed,
                                            decisions_path=inp.decisions[0] if inp.decisions else None)
    run.log_metrics({"accepted": len(galaxies), "rejected": int((final["decision"] != "accept").sum()),
                     "decided_by_person": int((final["decided_by"] == "person").sum()),
                     **{f"n_{k}": v for k, v in galaxies["split"].value_counts().items()}})
    run.log_artifact(snakemake.output.table1)
