"""Generate one mock CANDELS-like field (survey.source: mock)."""
import numpy as np

from blendphot.mock import run_make_mock_field
from blendphot.workflow import stage

with stage(snakemake) as run:
    p = snakemake.params
    survey = run_make_mock_field(dict(snakemake.output.items()), field=p.field, index=p.field_index, params=p.mock,
                                 seed=p.seed, pixel_scale=p.pixel_scale, zeropoint=p.zeropoint)
    counts = survey.truth["cls"].value_counts().to_dict()
    run.log_metrics({"objects": len(survey.truth), "catalogued": len(survey.morphology),
                     "covered_fraction": float(np.mean(survey.weight > 0)),
                     **{f"objects_{k}": v for k, v in counts.items()}})
