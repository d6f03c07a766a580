"""Predict the test blends with one trained model, in the shared prediction format."""
import contextlib
import dataclasses
import time

import numpy as np
import torch

from blendphot import io
from blendphot.data import BlendData
from blendphot.models import count_parameters
from blendphot.inference import predict_model
from blendphot.train import load_model, select_device
from blendphot.workflow import runtime_device, stage

with stage(snakemake) as run:
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    torch.set_num_threads(snakemake.threads)
    device = select_device(runtime_device())
    model, cfg = load_model(inp.model, device)
    test = BlendData.load(inp.images, inp.catalog, require_fluxes=False)
    masks = (io.create_array(out.masks, (len(test), 2, *test.images.shape[1:]), np.uint8)
             if cfg.arch != "blend2flux" else contextlib.nullcontext())
    start = time.perf_counter()
    with masks as masks_out:
        pred = predict_model(model, test, device=device, masks_out=masks_out, method=p.name)
    elapsed = time.perf_counter() - start
    io.write_csv(out.predictions, pred.catalog)
    io.write_json(out.info, {"name": p.name, "n_parameters": count_parameters(model), **dataclasses.asdict(cfg)})
    run.log_metrics({"blends": len(test), "blends_per_s": len(test) / max(elapsed, 1e-9)})
