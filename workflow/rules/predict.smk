# Stage 9 - predict: every trained model on the test blends, in the shared prediction format
# (config/README.md); mask models also write their masks. model.json: the architecture and its size.


def predict_outputs(name):
    outputs = {"predictions": f"results/predict/{name}/predictions.csv", "info": f"results/predict/{name}/model.json"}
    if config["train"]["models"][name]["arch"] != "blend2flux":
        outputs["masks"] = f"results/predict/{name}/masks.npy"
    return outputs


for _name in MODELS:

    rule:
        name:
            f"predict_{_name}"
        input:
            model=f"results/train/{_name}/model.pt",
            images="results/blend/test/images.npy",
            catalog="results/blend/test/catalog.csv",
        output:
            **predict_outputs(_name),
        params:
            name=_name,
        log:
            f"results/logs/predict/{_name}.log",
        benchmark:
            f"results/benchmarks/predict/{_name}.tsv"
        conda:
            "../../envs/train.yaml"
        container:
            CONTAINERS["train"]
        script:
            "../scripts/predict_model.py"
