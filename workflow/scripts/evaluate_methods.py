"""Evaluate every method on the test blends; write the metrics, Tables 1-3 and the summary."""
import json
from pathlib import Path

from blendphot import evaluate as ev
from blendphot import io
from blendphot.prediction import Prediction
from blendphot.workflow import stage

with stage(snakemake) as run:
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    catalog = io.read_csv(inp.catalog)
    model_masks = dict(zip(p.mask_models, inp.model_masks))
    predictions = {name: Prediction.load(path, model_masks.get(name), method=name)
                   for name, path in zip(p.models, inp.predictions)}
    sep = Prediction.load(inp.sep, inp.sep_masks, method="sep")
    predictions["sep"] = sep
    e = p.evaluate
    galaxies = ev.galaxy_table(catalog, predictions, zeropoint=p.zeropoint, true_masks=io.load_array(inp.masks),
                               sep=sep)
    metrics = ev.summarise(galaxies, zeropoint=p.zeropoint, outlier_dmag=e["outlier_dmag"],
                           mag_diff_bins=e["mag_diff_bins"], distance_bins_px=e["distance_bins_px"],
                           distance_bins_re=e["distance_bins_re"])
    ious = ev.iou_by_pair(galaxies)
    outcomes = ev.sep_outcomes(sep)
    infos = {name: json.loads(Path(path).read_text()) for name, path in zip(p.models, inp.model_info)}
    tables = {
        "table1": (ev.table1(io.read_csv(inp.table1)), "Morphological mix before and after inspection "
                   "(paper columns: Boucaud et al. 2019, Table 1)."),
        "table2": (ev.table2(metrics, infos), "Flux networks: size and flux MAPE (%) on the test blends."),
        "table3": (ev.table3(p.baseline), "sep parameters of the hot and cold modes."),
        "headline": (ev.headline(metrics), "Photometric errors per method and galaxy role, all test blends."),
    }
    io.write_csv(out.galaxies, galaxies)
    io.write_csv(out.metrics, metrics)
    io.write_csv(out.iou, ious)
    io.write_csv(out.sep_outcomes, outcomes)
    for name, (table, caption) in tables.items():
        io.write_csv(out[name], table)
        with io.atomic_path(out[f"{name}_tex"], ".tex") as tmp:
            tmp.write_text(ev.latex_table(table, caption=caption, label=f"tab:{name}"))
    deep = [m for m in p.models if infos[m]["arch"] != "unet"]  # the flux networks
    with io.atomic_path(out.summary, ".md") as tmp:
        tmp.write_text(ev.summary_markdown(metrics, outcomes, ious, deep_methods=deep))
    head = ev.headline(metrics)
    run.log_metrics({f"{r.method}.{r.role}.{k}": getattr(r, k) for r in head.itertuples()
                     for k in ("bias", "sigma", "outlier_fraction", "mape_flux", "mape_mag", "completeness")})
    run.log_metrics({f"{r.method}.iou": r.mean_iou for r in ious[ious["pair"] == "all"].itertuples()})
    run.log_artifact(out.summary)
