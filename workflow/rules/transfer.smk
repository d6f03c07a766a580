# Transfer: every trained model applied to other stamp sets (config `transfer`), for
# sim-to-real in one run: train on the mock survey, test on real stamps. Each set goes through
# the survey's own selection, neighbour removal and inspection, all its accepted galaxies become
# test blends, and the networks and sep are evaluated on them with the usual tables, beside the
# in-domain results: results/transfer/<set>/summary.md. Everything of a set lives under
# results/transfer/<set>/, laid out like results/.

T = "results/transfer/{tset}"


def transfer_archive(tset):
    """Where a transfer set's archive (its `stamps.url`) lands."""
    name = Path(TRANSFER[tset]["stamps"]["url"].split("?")[0]).name or "stampset.tar.gz"
    return f"results/transfer/{tset}/download/{name}"


def transfer_source(wildcards):
    stamps = TRANSFER[wildcards.tset]["stamps"]
    if stamps["path"]:
        return stampset_files(stamps["path"], key=f"transfer.{wildcards.tset}.stamps")
    return transfer_archive(wildcards.tset)


def transfer_segmentations(wildcards):
    if TRANSFER[wildcards.tset]["stamps"]["segmentation"] == "archive":
        return [f"results/transfer/{wildcards.tset}/stamps/stampset/segmentation.npy"]
    return []


def transfer_decisions(wildcards):
    path = TRANSFER[wildcards.tset]["decisions"]
    return [path] if path else []  # checked at start-up: it exists


# Every accepted galaxy of a transfer set is a test galaxy: none of them is trained on.
TRANSFER_SPLIT = {"fractions": {"train": 0.0, "val": 0.0, "test": 1.0}, "stratify": False}


wildcard_constraints:
    tset="|".join(TRANSFER) or "(?!)",  # (?!): matches nothing when no set is configured


rule transfer_download:
    output:
        T + "/download/{archive}",
    log:
        "results/logs/transfer/{tset}/download-{archive}.log",
    wildcard_constraints:
        archive=r"[^/]+",
    # on the submit host: compute nodes often have no internet
    localrule: True
    conda:
        "../../envs/data.yaml"
    container:
        CONTAINERS["data"]
    params:
        remote=lambda wildcards: TRANSFER[wildcards.tset]["stamps"],
        key=lambda wildcards: f"transfer.{wildcards.tset}.stamps",
    script:
        "../scripts/download_file.py"


rule transfer_import:
    input:
        transfer_source,
    output:
        images=T + "/survey/stampset/images.npy",
        segmentation=T + "/survey/stampset/segmentation.npy",
        catalog=T + "/survey/stampset/catalog.csv",
    log:
        "results/logs/transfer/{tset}/import.log",
    conda:
        "../../envs/data.yaml"
    container:
        CONTAINERS["data"]
    params:
        pixel_scale=config["survey"]["pixel_scale"],
    script:
        "../scripts/import_stampset.py"


rule transfer_select:
    input:
        stampset=T + "/survey/stampset/catalog.csv",
    output:
        catalog=T + "/select/selected.csv",
        counts=T + "/select/counts.csv",
    log:
        "results/logs/transfer/{tset}/select.log",
    conda:
        "../../envs/data.yaml"
    container:
        CONTAINERS["data"]
    params:
        select=config["select"],
        columns={},
    script:
        "../scripts/select_galaxies.py"


rule transfer_stamps:
    input:
        images=T + "/survey/stampset/images.npy",
        segmentation=T + "/survey/stampset/segmentation.npy",
        stampset=T + "/survey/stampset/catalog.csv",
        catalog=T + "/select/selected.csv",
    output:
        images=T + "/stamps/stampset/images.npy",
        weights=T + "/stamps/stampset/weights.npy",
        segmentation=T + "/stamps/stampset/segmentation.npy",
        catalog=T + "/stamps/stampset/catalog.csv",
        dropped=T + "/stamps/stampset/dropped.csv",
    log:
        "results/logs/transfer/{tset}/stamps.log",
    conda:
        "../../envs/data.yaml"
    container:
        CONTAINERS["data"]
    params:
        stamps=config["stamps"],
    script:
        "../scripts/take_stamps.py"


rule transfer_clean:
    input:
        images=[T + "/stamps/stampset/images.npy"],
        weights=[T + "/stamps/stampset/weights.npy"],
        catalogs=[T + "/stamps/stampset/catalog.csv"],
        segmentations=transfer_segmentations,
    output:
        **{k: v.replace("results/", T + "/", 1) for k, v in CLEAN_OUTPUTS.items()},
    log:
        "results/logs/transfer/{tset}/clean.log",
    benchmark:
        "results/benchmarks/transfer/{tset}/clean.tsv"
    conda:
        "../../envs/data.yaml"
    container:
        CONTAINERS["data"]
    params:
        clean=config["clean"],
        seed=config["seed"],
        zeropoint=config["survey"]["zeropoint"],
    script:
        "../scripts/remove_neighbours.py"


rule transfer_inspect:
    input:
        **{k: v.replace("results/", T + "/", 1) for k, v in CLEAN_OUTPUTS.items()},
    output:
        manifest=T + "/inspect/manifest.csv",
        page=T + "/inspect/index.html",
        gallery=directory(T + "/inspect/gallery"),
    log:
        "results/logs/transfer/{tset}/inspect.log",
    conda:
        "../../envs/data.yaml"
    container:
        CONTAINERS["data"]
    params:
        inspect={"reject_flags": config["inspect"]["reject_flags"]},  # not the survey's decisions file
    script:
        "../scripts/build_inspection.py"


rule transfer_split:
    input:
        manifest=T + "/inspect/manifest.csv",
        catalog=T + "/clean/catalog.csv",
        decisions=transfer_decisions,
    output:
        galaxies=T + "/split/galaxies.csv",
        table1=T + "/split/table1.csv",
    log:
        "results/logs/transfer/{tset}/split.log",
    conda:
        "../../envs/data.yaml"
    container:
        CONTAINERS["data"]
    params:
        split=TRANSFER_SPLIT,
        seed=config["seed"],
    script:
        "../scripts/split_galaxies.py"


rule transfer_blend:
    input:
        galaxies=T + "/split/galaxies.csv",
        images=T + "/clean/images.npy",
        masks=T + "/clean/masks.npy",
        catalog=T + "/clean/catalog.csv",
    output:
        images=T + "/blend/{split}/images.npy",
        masks=T + "/blend/{split}/masks.npy",
        central=T + "/blend/{split}/central.npy",
        catalog=T + "/blend/{split}/catalog.csv",
    log:
        "results/logs/transfer/{tset}/blend-{split}.log",
    benchmark:
        "results/benchmarks/transfer/{tset}/blend-{split}.tsv"
    wildcard_constraints:
        split="test",
    conda:
        "../../envs/data.yaml"
    container:
        CONTAINERS["data"]
    params:
        blend=lambda wildcards: config["blend"] | {"n_blends": {"test": TRANSFER[wildcards.tset]["n_blends"]}},
        seed=config["seed"],
        pixel_scale=config["survey"]["pixel_scale"],
    script:
        "../scripts/make_blends.py"


rule transfer_predict:
    input:
        model="results/train/{model}/model.pt",
        images=T + "/blend/test/images.npy",
        catalog=T + "/blend/test/catalog.csv",
    output:
        directory(T + "/predict/{model}"),
    log:
        "results/logs/transfer/{tset}/predict-{model}.log",
    benchmark:
        "results/benchmarks/transfer/{tset}/predict-{model}.tsv"
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


rule transfer_baseline:
    input:
        images=T + "/blend/test/images.npy",
        catalog=T + "/blend/test/catalog.csv",
    output:
        directory(T + "/baseline/sep"),
    log:
        "results/logs/transfer/{tset}/baseline.log",
    benchmark:
        "results/benchmarks/transfer/{tset}/baseline.tsv"
    conda:
        "../../envs/evaluate.yaml"
    container:
        CONTAINERS["evaluate"]
    params:
        baseline=config["baseline"],
    script:
        "../scripts/run_baseline.py"


rule transfer_evaluate:
    input:
        catalog=T + "/blend/test/catalog.csv",
        masks=T + "/blend/test/masks.npy",
        central=T + "/blend/test/central.npy",
        table1=T + "/split/table1.csv",
        predictions=expand(T + "/predict/{model}", model=MODELS, allow_missing=True),
        sep=T + "/baseline/sep",
        in_domain="results/evaluate/headline.csv",
    output:
        **{t: f"{T}/evaluate/{t}.csv" for t in TABLES},
        **{f"{t}_tex": f"{T}/evaluate/{t}.tex" for t in TABLES},
        galaxies=T + "/evaluate/galaxies.csv",
        metrics=T + "/evaluate/metrics.csv",
        iou=T + "/evaluate/iou.csv",
        images=T + "/evaluate/images.csv",
        sep_outcomes=T + "/evaluate/sep_outcomes.csv",
        summary=report(T + "/summary.md", caption="../report/transfer.rst", category="Transfer"),
    log:
        "results/logs/transfer/{tset}/evaluate.log",
    conda:
        "../../envs/evaluate.yaml"
    container:
        CONTAINERS["evaluate"]
    params:
        models=MODELS,
        evaluate=config["evaluate"],
        baseline=config["baseline"],
        zeropoint=config["survey"]["zeropoint"],
        title=lambda wildcards: (
            f"blendphot transfer: the networks trained on the {SOURCE} survey, tested on the "
            f"blends of stamp set '{wildcards.tset}'"
        ),
    script:
        "../scripts/evaluate_methods.py"
