"""Evaluate every method on the test blends; write the metrics, Tables 1-3 and the summary."""
from pathlib import Path

from blendphot.evaluate import run_evaluate
from blendphot.workflow import stage

with stage(snakemake) as run:
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    networks = dict(zip(p.models, inp.predictions, strict=True))
    head, ious = run_evaluate(Path(inp.catalog).parent, networks, inp.sep, inp.table1, dict(out.items()),
                              zeropoint=p.zeropoint, settings=p.evaluate, baseline=p.baseline,
                              title=p.get("title"), in_domain=inp.get("in_domain"),
                              structure={"truth": list(inp.truth), "catalog": inp.get("structure_catalog"),
                                         "mag_min": p.structure_mag_min} if "truth" in inp.keys() else None)
    run.log_metrics({f"{r.method}.{r.role}.{k}": getattr(r, k) for r in head.itertuples()
                     for k in ("bias", "sigma", "outlier_fraction", "mape_flux", "mape_mag", "completeness")})
    run.log_metrics({f"{r.method}.iou": r.mean_iou for r in ious[ious["pair"] == "all"].itertuples()})
    run.log_artifact(out.summary)
