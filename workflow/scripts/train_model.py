"""Train one model on the train/val blends (resuming a killed run), track every epoch."""
import tempfile
from pathlib import Path

from blendphot.config import runtime_settings, training_flops
from blendphot.device import check_device, device_facts, resolve_device, set_torch_threads
from blendphot.mlflow_model import save_pyfunc
from blendphot.tracking import NoTracking
from blendphot.train import run_train_model
from blendphot.workflow import gpu_job, runtime_device, stage

with stage(snakemake) as run:
    inp, out, p, name = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards.model
    what = f"train.models.{name}"
    device = resolve_device(runtime_device(), gpu_requested=gpu_job(snakemake.resources), what=what)
    run.set_tags(device_facts(device))
    check_device(runtime_device(), training_flops(snakemake.config, name), what=what)
    run.set_tags({"torch_threads": set_torch_threads(snakemake.threads)})
    summary = run_train_model(
        p.settings, seed=p.seed, init_from=inp.get("init_from"), device=device,
        **runtime_settings(snakemake.config),
        train_dir=Path(inp.train_images).parent if "train_images" in inp.keys() else None,
        pool=(Path(inp.clean_images).parent, inp.galaxies) if "galaxies" in inp.keys() else None,
        data_seed=snakemake.config["seed"], val_dir=Path(inp.val_images).parent,
        state_dir=p.state_dir, model_out=out.model, history_out=out.history,
        on_epoch=lambda record, epoch: run.log_metrics(record, step=epoch),
    )
    run.set_tags({"resumed": summary["resumed"]})
    run.log_metrics({"parameters": summary["parameters"], "best_epoch": summary["best_epoch"],
                     "epochs_run": summary["epochs_run"], "trivial_val_mape": summary["trivial_val_mape"],
                     "noise_sigma": summary["noise_sigma"], "flux_scale": summary["flux_scale"],
                     **{f"best_{k}": v for k, v in summary["best"].items() if k != "epoch"},
                     **{f"calibration_{k}": v for k, v in summary["calibration"].items()}})
    if not isinstance(run, NoTracking):  # in MLflow's model format: mlflow.pyfunc.load_model("runs:/<id>/model")
        with tempfile.TemporaryDirectory() as tmp:
            run.log_artifacts(save_pyfunc(out.model, Path(tmp) / "model"), "model")
    run.log_artifact(out.history)
