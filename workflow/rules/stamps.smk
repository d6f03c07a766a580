# Stage 3 - stamps: square cutouts of image and weight around each selected galaxy, per field.
# A ready stamp set has its stamps already: the selected ones are taken, with a weight map
# from each stamp's own noise (there is none in the set).

if SOURCE != "stamps":

    rule cut_stamps:
        input:
            image=lambda wildcards: field_file(wildcards.field, "image"),
            weight=lambda wildcards: field_file(wildcards.field, "weight"),
            catalog="results/select/selected.csv",
        output:
            images="results/stamps/{field}/images.npy",
            weights="results/stamps/{field}/weights.npy",
            catalog="results/stamps/{field}/catalog.csv",
            dropped="results/stamps/{field}/dropped.csv",
        log:
            "results/logs/stamps/{field}.log",
        benchmark:
            "results/benchmarks/stamps/{field}.tsv"
        conda:
            "../../envs/data.yaml"
        container:
            CONTAINERS["data"]
        params:
            stamps=config["stamps"],
        script:
            "../scripts/cut_stamps.py"


if SOURCE == "stamps":

    rule take_stamps:
        input:
            images="results/survey/stampset/images.npy",
            segmentation="results/survey/stampset/segmentation.npy",
            stampset="results/survey/stampset/catalog.csv",
            catalog="results/select/selected.csv",
        output:
            images="results/stamps/stampset/images.npy",
            weights="results/stamps/stampset/weights.npy",
            segmentation="results/stamps/stampset/segmentation.npy",
            catalog="results/stamps/stampset/catalog.csv",
            dropped="results/stamps/stampset/dropped.csv",
        log:
            "results/logs/stamps/stampset.log",
        benchmark:
            "results/benchmarks/stamps/stampset.tsv"
        conda:
            "../../envs/data.yaml"
        container:
            CONTAINERS["data"]
        params:
            stamps=config["stamps"],
        script:
            "../scripts/take_stamps.py"
