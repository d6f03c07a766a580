"""The ``blendphot`` command: helpers around the workflow.

    blendphot check-config config/paper.yaml [overlay.yaml ...]
    blendphot download URL DEST [--sha256 HEX]
    blendphot mock-stampset results/ my-stampset/ [--archive]
    blendphot config-reference [--write config/README.md | --check config/README.md]
    blendphot predict results/train/blend2flux/model.pt my_blends/ my_predictions/
"""

from __future__ import annotations

import argparse
import sys

from blendphot.errors import BlendphotError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="blendphot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-config", help="validate config files as `snakemake --configfile A B` merges them; "
                                                "print the resolved config (every default filled in)")
    check.add_argument("config", nargs="+", help="config files, later ones overriding earlier ones key by key")
    check.add_argument("-q", "--quiet", action="store_true", help="only say whether the config is valid")
    dl = sub.add_parser("download", help="resumable, verified download of one file")
    dl.add_argument("url")
    dl.add_argument("dest")
    dl.add_argument("--sha256", default=None)
    mock = sub.add_parser("mock-stampset", help="a stamp set in the Zenodo layout cut from a mock survey run "
                                                "(neighbours kept, a segmentation map, the truth beside it)")
    mock.add_argument("results", help="the results/ folder of a run with survey.source: mock")
    mock.add_argument("dest", help="directory to write candels_img.npy, candels_seg.npy, candels_cat.csv into")
    mock.add_argument("--size", type=int, default=128, help="stamp size in pixels (default 128)")
    mock.add_argument("--pixel-scale", type=float, default=0.06)
    mock.add_argument("--archive", action="store_true", help="also pack DEST into DEST.tar.gz, as on Zenodo")
    ref = sub.add_parser("config-reference", help="the table of every config key, generated from the schema")
    where = ref.add_mutually_exclusive_group()
    where.add_argument("--write", metavar="FILE", help="replace the generated table in FILE (config/README.md)")
    where.add_argument("--check", metavar="FILE", help="fail when FILE's table is not the schema's")
    pr = sub.add_parser("predict", help="a trained model over blends of your own (a blend folder or a .npy "
                                        "array of (N, S, S) blends in e-/s)")
    pr.add_argument("model", help="a trained model, e.g. results/train/blend2flux/model.pt, or the MLflow URI of "
                                  "a training run's model, runs:/<run_id>/model")
    pr.add_argument("--tracking-uri", help="with an MLflow URI: the tracking server or store "
                                           "(e.g. sqlite:///results/mlflow/mlflow.db)")
    pr.add_argument("blends", help="a blend folder (images.npy, catalog.csv), one .npy array of blends, or a "
                                   "FITS image with --pairs")
    pr.add_argument("--pairs", help="with a FITS image: CSV of the central galaxies (ra, dec in degrees, or 0-based "
                                    "pixel x, y; id optional), one stamp cut around each")
    pr.add_argument("--weight", help="with a FITS image: its inverse-variance weight map (0 = no data)")
    pr.add_argument("--skip", action="store_true", help="with a FITS image: leave out the pairs too close to its "
                                                        "edge or without data (listed in skipped.csv) instead of "
                                                        "stopping")
    pr.add_argument("--pixel-scale", type=float, default=0.06,
                    help="arcsec per pixel of the model's training images; a FITS image must match (0.06)")
    pr.add_argument("out", help="the prediction folder to write (predictions.csv, model.json; masks.npy and "
                    "images.npy for mask and image models)")
    pr.add_argument("--name", help="the method's name in the output (default: the model's folder, e.g. blend2flux)")
    pr.add_argument("--zeropoint", type=float, default=25.9463, help="AB zero point of the magnitudes "
                                                                    "(default: CANDELS F160W, 25.9463)")
    pr.add_argument("--device", default=None, help="auto (a GPU when there is one), cpu, cuda or cuda:N (default: "
                                                   "BLENDPHOT_DEVICE, else auto)")
    pr.add_argument("--batch-size", type=int, default=256)
    pr.add_argument("--noise-tolerance", type=float, default=1.5,
                    help="largest ratio between the blends' background noise and the training blends' (1.5)")
    args = parser.parse_args(argv)
    try:
        if args.command == "check-config":
            import yaml

            from blendphot.config import check_space, load_configs

            cfg = load_configs(args.config)
            check_space(cfg)
            if not args.quiet:
                print(yaml.safe_dump(cfg, sort_keys=False), end="")
            print(f"{' + '.join(args.config)}: valid (survey.source = {cfg['survey']['source']})")
        elif args.command == "download":
            from blendphot.download import download, sha256sum

            path = download(args.url, args.dest, sha256=args.sha256)
            print(f"{path}  sha256 {sha256sum(path)}")
        elif args.command == "mock-stampset":
            from blendphot.stampset import mock_stampset

            root, n = mock_stampset(args.results, args.dest, size=args.size, pixel_scale=args.pixel_scale,
                                    archive=args.archive)
            print(f"{root}: {n} stamps (truth.csv beside them)")
        elif args.command == "predict":
            import tempfile

            from blendphot.device import requested_device, resolve_device
            from blendphot.inference import fetch_model, run_predict

            name, asked_by = requested_device(args.device)
            device = resolve_device(name, what="prediction", asked_by=asked_by)
            with tempfile.TemporaryDirectory(prefix="blendphot-model-") as download:  # an MLflow model, if any
                model = fetch_model(args.model, download, args.tracking_uri)
                pred = run_predict(model, args.blends, args.out, zeropoint=args.zeropoint, device=device,
                                   batch_size=args.batch_size, noise_tolerance=args.noise_tolerance, pairs=args.pairs,
                                   weight=args.weight, pixel_scale=args.pixel_scale, skip=args.skip, name=args.name,
                                   source=args.model)
            print(f"{args.out}: {len(pred.catalog)} blends measured by {pred.method}")
        elif args.command == "config-reference":
            from blendphot.config import reference_markdown, write_reference

            if args.write:
                write_reference(args.write)
            elif args.check:
                if not write_reference(args.check, check=True):
                    print(f"blendphot: {args.check}: the config reference differs from the schema; regenerate it "
                          f"with `blendphot config-reference --write {args.check}`", file=sys.stderr)
                    return 1
            else:
                print(reference_markdown())
    except BlendphotError as exc:
        print(f"blendphot: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
