"""Apply the inspection decisions and split the accepted galaxies by galaxy."""
import numpy as np

from blendphot import io
from blendphot.config import child_seed
from blendphot.inspect import apply_decisions
from blendphot.select import count_table
from blendphot.split import split_galaxies
from blendphot.workflow import stage

with stage(snakemake) as run:
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    manifest = io.read_csv(inp.manifest, required=["id", "cls", "decision", "reason"], dtype={"id": str})
    person = io.read_csv(inp.decisions[0], dtype={"id": str}) if inp.decisions else None
    final = apply_decisions(manifest[["id", "decision", "reason"]], person,
                            source=inp.decisions[0] if inp.decisions else "decisions")
    catalog = io.read_csv(inp.catalog, required=["gid", "cls"])
    accepted = catalog[catalog["gid"].isin(final.loc[final["decision"] == "accept", "id"])]
    rng = np.random.default_rng(child_seed(p.seed, "split"))
    galaxies = split_galaxies(accepted, p.split["fractions"], rng=rng, stratify=p.split["stratify"])
    table1 = count_table(catalog, "before_inspection").merge(
        count_table(accepted, "after_inspection"), on="class")
    io.write_csv(out.galaxies, galaxies)
    io.write_csv(out.table1, table1)
    run.log_metrics({"accepted": len(accepted), "rejected": len(catalog) - len(accepted),
                     "decided_by_person": int((final["decided_by"] == "person").sum()),
                     **{f"n_{k}": v for k, v in galaxies["split"].value_counts().items()}})
    run.log_artifact(out.table1)
