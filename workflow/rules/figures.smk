# Stage 12 - figures: the paper's figures 1, 2 and 5-12 (one rule each, PNG + PDF), all
# registered in the Snakemake report (`snakemake --report results/report.html`).

FIG = config["figures"]
FIGURE_METHODS = FIG["methods"] if FIG["methods"] is not None else FLUX_MODELS + ["sep"]
ARCHS = {m: config["train"]["models"][m]["arch"] for m in MODELS}
EVALUATED = {"galaxies": "results/evaluate/galaxies.csv"}
TEST_BLENDS = {"images": "results/blend/test/images.npy", "catalog": "results/blend/test/catalog.csv"}
FIGURE_INPUTS = {
    "figure1": {
        "originals": "results/clean/originals.npy",
        "images": "results/clean/images.npy",
        "masks": "results/clean/masks.npy",
        "catalog": "results/clean/catalog.csv",
        "galaxies": "results/split/galaxies.csv",
    },
    "figure2": TEST_BLENDS,
    **{f"figure{n}": EVALUATED for n in (5, 6, 7, 8, 9)},
}
if MASK_MODELS:
    mask_inputs = {**EVALUATED, **TEST_BLENDS, "masks": "results/blend/test/masks.npy",
                   "model_masks": expand("results/predict/{model}/masks.npy", model=MASK_MODELS)}
    FIGURE_INPUTS |= {"figure10": mask_inputs, "figure11": mask_inputs, "figure12": EVALUATED}


def figure_params(name):
    """Only the settings a figure uses, so that changing one reruns only the figures it shapes."""
    params = {"dpi": FIG["dpi"], "archs": ARCHS}
    if name == "figure2":
        params |= {k: FIG[k] for k in ("figure2_distance_px", "figure2_mag_diff")}
    if name in ("figure5", "figure6", "figure7", "figure8", "figure9"):
        params |= {"methods": FIGURE_METHODS, "outlier_dmag": config["evaluate"]["outlier_dmag"],
                   "mag_diff_bins": config["evaluate"]["mag_diff_bins"]}
    if name in ("figure10", "figure11", "figure12"):
        params |= {"mask_methods": MASK_MODELS, "examples": FIG["examples"]}
    return params


for _fig, _inputs in FIGURE_INPUTS.items():

    rule:
        name:
            f"plot_{_fig}"
        input:
            **_inputs,
        output:
            report(f"results/figures/{_fig}.png", caption=f"../report/{_fig}.rst", category="Figures"),
            expand("results/figures/{fig}.{ext}", fig=_fig, ext=FIG["formats"]),
        params:
            name=_fig,
            figure=figure_params(_fig),
        log:
            f"results/logs/figures/{_fig}.log",
        conda:
            "../../envs/evaluate.yaml"
        container:
            CONTAINERS["evaluate"]
        script:
            "../scripts/plot_figure.py"
