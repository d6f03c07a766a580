# Stage 8 - train: one job per model under train.models (`snakemake train_models` trains them all,
# `snakemake results/train/<model>/model.pt` one). Each asks for one GPU through the gpu=1
# resource of profiles/default; without a GPU it runs on the CPU, unless its training is too
# long for a CPU (config.expensive_on_cpu): then it stops at once, unless BLENDPHOT_DEVICE=cpu
# asks for the CPU explicitly. A killed job resumes from results/train/<model>/state/last.pt.
# Runtime switches (train.amp, train.channels_last, BLENDPHOT_DEVICE) are not params: changing
# them reruns nothing.


rule train_model:
    input:
        unpack(train_inputs),
    output:
        model="results/train/{model}/model.pt",
        history="results/train/{model}/history.csv",
    log:
        "results/logs/train/{model}.log",
    benchmark:
        "results/benchmarks/train/{model}.tsv"
    wildcard_constraints:
        model="|".join(MODELS),
    conda:
        "../../envs/train.yaml"
    container:
        CONTAINERS["train"]
    params:
        settings=lambda wildcards: model_settings(config, wildcards.model),
        seed=lambda wildcards: model_seed(config["seed"], wildcards.model),
        state_dir=lambda wildcards: f"results/train/{wildcards.model}/state",
    script:
        "../scripts/train_model.py"
