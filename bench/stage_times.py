"""Where the minutes of a workflow run go: each stage's time and share, from Snakemake's benchmark files.

Every rule writes ``results/benchmarks/<stage>[/<wildcards>].tsv`` (wall seconds, CPU seconds,
peak memory). This script reads them all and prints one row per job and one per stage, sorted by
time, with each one's share of the summed job time; and the run's span, from the first job's start
(its file's time minus its seconds) to the last one's end, with the mean number of jobs running.

    python bench/stage_times.py                      # results/benchmarks of the last run
    python bench/stage_times.py path/to/benchmarks --jobs --csv times.csv

Shares are of the summed job time, not of the span: jobs that run side by side overlap.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def read_benchmarks(root: Path) -> pd.DataFrame:
    """One row per benchmark file: job (its path under ``root``), stage, seconds, cpu_s, rss_mb, start, end."""
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        table = pd.read_csv(path, sep="\t")
        if table.empty:
            continue
        last = table.iloc[-1]  # a rule benchmarked with repeat() has several rows; the last is this run's
        job = path.relative_to(root).with_suffix("").as_posix()
        end = path.stat().st_mtime
        rows.append({"job": job, "stage": job.split("/")[0], "seconds": float(last["s"]),
                     "cpu_s": float(last.get("cpu_time", float("nan"))), "rss_mb": float(last["max_rss"]),
                     "start": end - float(last["s"]), "end": end})
    if not rows:
        raise SystemExit(f"{root}: no Snakemake benchmark files (*.tsv); run the workflow first")
    return pd.DataFrame(rows)


def summarise(jobs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(jobs, stages, totals): each job's and each stage's time and share of the summed job time."""
    total = jobs["seconds"].sum()
    jobs = jobs.assign(share=jobs["seconds"] / total).sort_values("seconds", ascending=False)
    stages = (jobs.groupby("stage")
              .agg(jobs=("job", "size"), seconds=("seconds", "sum"), cpu_s=("cpu_s", "sum"), rss_mb=("rss_mb", "max"))
              .sort_values("seconds", ascending=False))
    stages["share"] = stages["seconds"] / total
    span = jobs["end"].max() - jobs["start"].min()
    return jobs, stages, {"summed_s": total, "span_s": span, "mean_parallel_jobs": total / span if span else 1.0}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="results/benchmarks", type=Path,
                        help="the benchmark folder of a run (default: results/benchmarks)")
    parser.add_argument("--jobs", action="store_true", help="also print one row per job")
    parser.add_argument("--csv", type=Path, help="write the stage table to this CSV file")
    args = parser.parse_args(argv)
    jobs, stages, totals = summarise(read_benchmarks(args.root))
    fmt = {"seconds": "{:.1f}".format, "cpu_s": "{:.1f}".format, "rss_mb": "{:.0f}".format,
           "share": "{:.1%}".format}
    if args.jobs:
        print(jobs[["job", "seconds", "cpu_s", "rss_mb", "share"]].to_string(index=False, formatters=fmt), "\n")
    print(stages.to_string(formatters=fmt))
    print(f"\nsummed job time {totals['summed_s']:.0f} s; span from the first job's start to the last one's end "
          f"{totals['span_s']:.0f} s ({totals['mean_parallel_jobs']:.2f} jobs at a time on average)")
    if args.csv:
        stages.to_csv(args.csv)


if __name__ == "__main__":
    main()
