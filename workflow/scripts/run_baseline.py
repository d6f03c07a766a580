"""Run the sep baseline over the test blends."""
import time
from pathlib import Path

from tqdm import tqdm

from blendphot.baseline import BaselineConfig, run_baseline
from blendphot.evaluate import sep_outcomes
from blendphot.workflow import stage

with stage(snakemake) as run:
    cfg = BaselineConfig.from_config(snakemake.params.baseline)
    start = time.perf_counter()
    with tqdm(desc="sep", unit="blend", mininterval=5) as bar:
        pred = run_baseline(Path(snakemake.input.images).parent, snakemake.output[0], cfg,
                            workers=snakemake.threads, progress=bar.update)
    elapsed = time.perf_counter() - start
    outcomes = sep_outcomes(pred)
    run.log_metrics({"blends": len(pred.catalog), "blends_per_s": len(pred.catalog) / max(elapsed, 1e-9),
                     **{f"outcome_{o}": f for o, f in zip(outcomes["outcome"], outcomes["fraction"], strict=True)}})
