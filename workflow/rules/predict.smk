# Stage 9 - predict: every trained model on the test blends, as a prediction folder
# results/predict/<model>/ (config/README.md): predictions.csv, masks.npy for a network with
# masks, images.npy for an image network (whose fluxes and masks are measured on its images with
# the clean stage's settings), model.json with its architecture and size.
# `snakemake results/predict/<model>` runs one.


rule predict_model:
    input:
        model="results/train/{model}/model.pt",
        images="results/blend/test/images.npy",
        catalog="results/blend/test/catalog.csv",
    output:
        directory("results/predict/{model}"),
    log:
        "results/logs/predict/{model}.log",
    benchmark:
        "results/benchmarks/predict/{model}.tsv"
    wildcard_constraints:
        model="|".join(MODELS),
    conda:
        "../../envs/train.yaml"
    container:
        CONTAINERS["train"]
    params:
        clean=config["clean"],
    script:
        "../scripts/predict_model.py"
