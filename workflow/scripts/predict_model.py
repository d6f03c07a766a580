"""Predict the test blends with one trained model, as a prediction folder."""
from pathlib import Path

from blendphot.config import runtime_settings
from blendphot.device import device_facts, resolve_device, set_torch_threads
from blendphot.inference import run_predict_model
from blendphot.workflow import gpu_job, runtime_device, stage

with stage(snakemake) as run:
    name = snakemake.wildcards.model
    device = resolve_device(runtime_device(), gpu_requested=gpu_job(snakemake.resources), what=f"prediction of {name}")
    run.set_tags(device_facts(device))
    run.set_tags({"torch_threads": set_torch_threads(snakemake.threads)})
    runtime = {k: v for k, v in runtime_settings(snakemake.config).items() if k in ("amp", "channels_last")}
    figures = run_predict_model(snakemake.input.model, Path(snakemake.input.images).parent, snakemake.output[0],
                                name=name, device=device, clean=snakemake.params.clean, **runtime)
    run.log_metrics(figures)
