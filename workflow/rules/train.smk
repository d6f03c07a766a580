# Stage 8 - train: one rule per model listed under train.models (train_blend2flux, ...).
# Each asks for one GPU through the gpu=1 resource set in profiles/default; without a GPU it
# runs on the CPU, unless its training is too long for a CPU (config.expensive_on_cpu): then
# it stops at once, unless BLENDPHOT_DEVICE=cpu asks for the CPU explicitly.
# A killed job resumes from results/train/<model>/state/last.pt.

MODELS = list(config["train"]["models"])


def blend_files(split):
    return {f"{split}_{kind}": f"results/blend/{split}/{kind}{ext}"
            for kind, ext in (("images", ".npy"), ("masks", ".npy"), ("catalog", ".csv"))}


def train_inputs(name):
    """Train and val blends, and the U-Net checkpoint a blend2mask2flux model starts from."""
    inputs = {**blend_files("train"), **blend_files("val")}
    init = config["train"]["models"][name]["init_from"]
    if init is not None:
        inputs["init_from"] = f"results/train/{init}/model.pt"
    return inputs


for _name in MODELS:

    rule:
        name:
            f"train_{_name}"
        input:
            **train_inputs(_name),
        output:
            model=f"results/train/{_name}/model.pt",
            history=f"results/train/{_name}/history.csv",
        params:
            settings=model_settings(config, _name),
            seed=model_seed(config["seed"], _name),
            state_dir=f"results/train/{_name}/state",
        log:
            f"results/logs/train/{_name}.log",
        benchmark:
            f"results/benchmarks/train/{_name}.tsv"
        conda:
            "../../envs/train.yaml"
        container:
            CONTAINERS["train"]
        script:
            "../scripts/train_model.py"


def rules_without_gpu():
    """Model rules that the profiles give no gpu resource (new models need profile entries)."""
    settings = workflow.resource_settings.overwrite_resources
    names = [f"{verb}_{name}" for name in MODELS for verb in ("train", "predict")]
    return [rule for rule in names if "gpu" not in dict(settings.get(rule, {}))]


if rules_without_gpu():
    logger.warning(
        "blendphot: no gpu resource for rules " + ", ".join(rules_without_gpu())
        + "; add them under set-resources in profiles/default/config.yaml, or they run without a GPU"
        + " on a cluster."
    )


def local_gpu_visible():
    """Whether this host has a CUDA GPU device (no torch import at start-up)."""
    return Path("/dev/nvidiactl").exists() or Path("/dev/nvidia0").exists()


_EXPENSIVE = expensive_on_cpu(config)
if _EXPENSIVE and workflow.local_exec and not local_gpu_visible() and os.environ.get(DEVICE_ENV) != "cpu":
    logger.warning(
        "blendphot: no GPU on this machine, and training "
        + ", ".join(f"{n} ({f:.1e} FLOP, ~{f / CPU_FLOPS / 3600:.0f} h on a CPU)" for n, f in _EXPENSIVE.items())
        + " is far too long for a CPU: those training jobs will stop at once. Run them on a GPU"
        + " (a cluster: README.md, 'Running on a SLURM cluster'), train smaller models (see"
        + " config/config.yaml's train section), or set BLENDPHOT_DEVICE=cpu to train on the CPU anyway."
    )
