"""Train one model on the train/val blends (resuming a killed run), track every epoch."""
import torch

from blendphot.config import training_flops
from blendphot.train import check_device, train_model
from blendphot.workflow import runtime_device, stage

with stage(snakemake) as run:
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    name = snakemake.rule.removeprefix("train_")
    check_device(runtime_device(), training_flops(snakemake.config, name), what=f"train.models.{name}")
    torch.set_num_threads(snakemake.threads)
    summary = train_model(
        p.settings, seed=p.seed, init_from=inp.get("init_from"), device=runtime_device(),
        train_files={"images": inp.train_images, "masks": inp.train_masks, "catalog": inp.train_catalog},
        val_files={"images": inp.val_images, "masks": inp.val_masks, "catalog": inp.val_catalog},
        state_dir=p.state_dir, model_out=out.model, history_out=out.history,
        on_epoch=lambda record, epoch: run.log_metrics(record, step=epoch),
    )
    run.set_tags({"device": summary["device"], "resumed": summary["resumed"]})
    run.log_metrics({"parameters": summary["parameters"], "best_epoch": summary["best_epoch"],
                     "epochs_run": summary["epochs_run"], "trivial_val_mape": summary["trivial_val_mape"],
                     "noise_sigma": summary["noise_sigma"], "flux_scale": summary["flux_scale"],
                     **{f"best_{k}": v for k, v in summary["best"].items() if k != "epoch"}})
    run.log_artifact(out.model, "model")
    run.log_artifact(out.history)
