# Stage 7 - blend: seeded artificial blends per split.


rule make_blends:
    input:
        galaxies="results/split/galaxies.csv",
        images="results/clean/images.npy",
        masks="results/clean/masks.npy",
        catalog="results/clean/catalog.csv",
    output:
        images="results/blend/{split}/images.npy",
        masks="results/blend/{split}/masks.npy",
        central="results/blend/{split}/central.npy",
        catalog="results/blend/{split}/catalog.csv",
    log:
        "results/logs/blend/{split}.log",
    benchmark:
        "results/benchmarks/blend/{split}.tsv"
    wildcard_constraints:
        split="train|val|test",
    conda:
        "../../envs/data.yaml"
    container:
        CONTAINERS["data"]
    params:
        blend=config["blend"],
        seed=config["seed"],
        pixel_scale=config["survey"]["pixel_scale"],
    script:
        "../scripts/make_blends.py"
