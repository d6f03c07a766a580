# Transfer: every trained model applied to other stamp sets (config `transfer`), for
# sim-to-real in one run: train on the mock survey, test on real stamps. Each set goes through
# the survey's own selection, neighbour removal and inspection, all its accepted galaxies become
# test blends, and the networks and sep are evaluated on them with the usual tables, beside the
# in-domain results: results/transfer/<set>/summary.md. Everything of a set lives under
# results/transfer/<set>/, laid out like results/. The stages a survey of any source has are
# those very rules (`use rule`), with a set's paths; the import and the stamps, which exist in
# the main workflow only for a stamp-set survey, are written out here.


wildcard_constraints:
    tset="|".join(TRANSFER) or "(?!)",  # (?!): matches nothing when no set is configured


rule transfer_download:
    output:
        "results/transfer/{tset}/download/{archive}",
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
        images="results/transfer/{tset}/survey/stampset/images.npy",
        segmentation="results/transfer/{tset}/survey/stampset/segmentation.npy",
        catalog="results/transfer/{tset}/survey/stampset/catalog.csv",
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


rule transfer_stamps:
    input:
        images="results/transfer/{tset}/survey/stampset/images.npy",
        segmentation="results/transfer/{tset}/survey/stampset/segmentation.npy",
        stampset="results/transfer/{tset}/survey/stampset/catalog.csv",
        catalog="results/transfer/{tset}/select/selected.csv",
    output:
        images="results/transfer/{tset}/stamps/stampset/images.npy",
        weights="results/transfer/{tset}/stamps/stampset/weights.npy",
        segmentation="results/transfer/{tset}/stamps/stampset/segmentation.npy",
        catalog="results/transfer/{tset}/stamps/stampset/catalog.csv",
        dropped="results/transfer/{tset}/stamps/stampset/dropped.csv",
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


use rule select_galaxies as transfer_select with:
    input:
        stampset="results/transfer/{tset}/survey/stampset/catalog.csv",
    output:
        catalog="results/transfer/{tset}/select/selected.csv",
        counts="results/transfer/{tset}/select/counts.csv",
    log:
        "results/logs/transfer/{tset}/select.log",
    benchmark:
        "results/benchmarks/transfer/{tset}/select.tsv"
    params:
        columns={},  # a stamp set is classified already


use rule remove_neighbours as transfer_clean with:
    input:
        images=["results/transfer/{tset}/stamps/stampset/images.npy"],
        weights=["results/transfer/{tset}/stamps/stampset/weights.npy"],
        catalogs=["results/transfer/{tset}/stamps/stampset/catalog.csv"],
        segmentations=transfer_segmentations,
    output:
        **{k: v.replace("results/", "results/transfer/{tset}/", 1) for k, v in CLEAN_OUTPUTS.items()},
    log:
        "results/logs/transfer/{tset}/clean.log",
    benchmark:
        "results/benchmarks/transfer/{tset}/clean.tsv"


use rule build_inspection as transfer_inspect with:
    input:
        **{k: v.replace("results/", "results/transfer/{tset}/", 1) for k, v in CLEAN_OUTPUTS.items()},
    output:
        manifest="results/transfer/{tset}/inspect/manifest.csv",
        page="results/transfer/{tset}/inspect/index.html",
        gallery=directory("results/transfer/{tset}/inspect/gallery"),
    log:
        "results/logs/transfer/{tset}/inspect.log",
    benchmark:
        "results/benchmarks/transfer/{tset}/inspect.tsv"


use rule split_galaxies as transfer_split with:
    input:
        manifest="results/transfer/{tset}/inspect/manifest.csv",
        catalog="results/transfer/{tset}/clean/catalog.csv",
        decisions=transfer_decisions,
    output:
        galaxies="results/transfer/{tset}/split/galaxies.csv",
        table1="results/transfer/{tset}/split/table1.csv",
    log:
        "results/logs/transfer/{tset}/split.log",
    benchmark:
        "results/benchmarks/transfer/{tset}/split.tsv"
    params:
        split=TRANSFER_SPLIT,


use rule make_blends as transfer_blend with:
    input:
        galaxies="results/transfer/{tset}/split/galaxies.csv",
        images="results/transfer/{tset}/clean/images.npy",
        masks="results/transfer/{tset}/clean/masks.npy",
        catalog="results/transfer/{tset}/clean/catalog.csv",
    output:
        images="results/transfer/{tset}/blend/{split}/images.npy",
        masks="results/transfer/{tset}/blend/{split}/masks.npy",
        central="results/transfer/{tset}/blend/{split}/central.npy",
        catalog="results/transfer/{tset}/blend/{split}/catalog.csv",
    log:
        "results/logs/transfer/{tset}/blend-{split}.log",
    benchmark:
        "results/benchmarks/transfer/{tset}/blend-{split}.tsv"
    wildcard_constraints:
        split="test",
    params:
        blend=lambda wildcards: config["blend"] | {"n_blends": {"test": TRANSFER[wildcards.tset]["n_blends"]}},


use rule predict_model as transfer_predict with:
    input:
        model="results/train/{model}/model.pt",
        images="results/transfer/{tset}/blend/test/images.npy",
        catalog="results/transfer/{tset}/blend/test/catalog.csv",
    output:
        directory("results/transfer/{tset}/predict/{model}"),
    log:
        "results/logs/transfer/{tset}/predict-{model}.log",
    benchmark:
        "results/benchmarks/transfer/{tset}/predict-{model}.tsv"


use rule run_baseline as transfer_baseline with:
    input:
        images="results/transfer/{tset}/blend/test/images.npy",
        catalog="results/transfer/{tset}/blend/test/catalog.csv",
    output:
        directory("results/transfer/{tset}/baseline/sep"),
    log:
        "results/logs/transfer/{tset}/baseline.log",
    benchmark:
        "results/benchmarks/transfer/{tset}/baseline.tsv"


use rule evaluate as transfer_evaluate with:
    input:
        catalog="results/transfer/{tset}/blend/test/catalog.csv",
        masks="results/transfer/{tset}/blend/test/masks.npy",
        central="results/transfer/{tset}/blend/test/central.npy",
        table1="results/transfer/{tset}/split/table1.csv",
        predictions=expand("results/transfer/{tset}/predict/{model}", model=MODELS, allow_missing=True),
        sep="results/transfer/{tset}/baseline/sep",
        in_domain="results/evaluate/headline.csv",
    output:
        **{t: f"results/transfer/{{tset}}/evaluate/{t}.csv" for t in TABLES},
        **{f"{t}_tex": f"results/transfer/{{tset}}/evaluate/{t}.tex" for t in TABLES},
        galaxies="results/transfer/{tset}/evaluate/galaxies.csv",
        metrics="results/transfer/{tset}/evaluate/metrics.csv",
        iou="results/transfer/{tset}/evaluate/iou.csv",
        images="results/transfer/{tset}/evaluate/images.csv",
        sep_outcomes="results/transfer/{tset}/evaluate/sep_outcomes.csv",
        summary=report("results/transfer/{tset}/summary.md", caption="../report/transfer.rst", category="Transfer"),
    log:
        "results/logs/transfer/{tset}/evaluate.log",
    benchmark:
        "results/benchmarks/transfer/{tset}/evaluate.tsv"
    params:
        title=lambda wildcards: (
            f"blendphot transfer: the networks trained on the {SOURCE} survey, tested on the "
            f"blends of stamp set '{wildcards.tset}'"
        ),
