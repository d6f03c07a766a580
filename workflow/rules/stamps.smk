# Stage 3 - stamps: square cutouts of image and weight around each selected galaxy, per field.


rule cut_stamps:
    input:
        image="results/survey/{field}/image.fits",
        weight="results/survey/{field}/weight.fits",
        catalog="results/select/selected.csv",
    output:
        images="results/stamps/{field}/images.npy",
        weights="results/stamps/{field}/weights.npy",
        catalog="results/stamps/{field}/catalog.csv",
        dropped="results/stamps/{field}/dropped.csv",
    params:
        stamps=config["stamps"],
    log:
        "results/logs/stamps/{field}.log",
    benchmark:
        "results/benchmarks/stamps/{field}.tsv"
    conda:
        "../../envs/data.yaml"
    container:
        CONTAINERS["data"]
    script:
        "../scripts/cut_stamps.py"
