"""Generate one mock CANDELS-like field (survey.source: mock)."""
import numpy as np

from blendphot import io, mock
from blendphot.config import child_seed
from blendphot.workflow import stage

with stage(snakemake) as run:
    p, out = snakemake.params, snakemake.output
    field = mock.MockField(**p.field)
    seed = child_seed(p.seed, "mock").spawn(p.field_index + 1)[p.field_index]
    survey = mock.generate_field(field, p.mock, pixel_scale=p.pixel_scale, zeropoint=p.zeropoint, seed=seed)
    io.write_fits_image(out.image, survey.image, survey.header)
    io.write_fits_image(out.weight, survey.weight, survey.header)
    io.write_fits_image(out.psf, survey.psf)
    io.write_fits_table(out.photometry, survey.photometry, {"FIELD": field.name})
    io.write_fits_table(out.morphology, survey.morphology, {"FIELD": field.name})
    io.write_csv(out.truth, survey.truth)
    counts = survey.truth["cls"].value_counts().to_dict()
    run.log_metrics({"objects": len(survey.truth), "catalogued": len(survey.morphology),
                     "covered_fraction": float(np.mean(survey.weight > 0)),
                     **{f"objects_{k}": v for k, v in counts.items()}})
