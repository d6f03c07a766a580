"""Predict the test blends with one trained model, as a prediction folder."""
from pathlib import Path

import torch

from blendphot.config import runtime_settings
from blendphot.inference import run_predict_model
from blendphot.workflow import runtime_device, stage

with stage(snakemake) as run:
    torch.set_num_threads(snakemake.threads)
    figures = run_predict_model(snakemake.input.model, Path(snakemake.input.images).parent, snakemake.output[0],
                                name=snakemake.wildcards.model, device=runtime_device(),
                                **runtime_settings(snakemake.config))
    run.log_metrics(figures)
