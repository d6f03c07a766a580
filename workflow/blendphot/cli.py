"""The ``blendphot`` command: helpers around the workflow.

    blendphot check-config config/paper.yaml
    blendphot download URL DEST [--sha256 HEX]
"""

from __future__ import annotations

import argparse
import sys

from blendphot.errors import BlendphotError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="blendphot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-config", help="validate a config file against the schema")
    check.add_argument("config")
    dl = sub.add_parser("download", help="resumable, verified download of one file")
    dl.add_argument("url")
    dl.add_argument("dest")
    dl.add_argument("--sha256", default=None)
    args = parser.parse_args(argv)
    try:
        if args.command == "check-config":
            from blendphot.config import load_config

            cfg = load_config(args.config)
            print(f"{args.config}: valid (survey.source = {cfg['survey']['source']})")
        elif args.command == "download":
            from blendphot.download import download, sha256sum

            path = download(args.url, args.dest, sha256=args.sha256)
            print(f"{path}  sha256 {sha256sum(path)}")
    except BlendphotError as exc:
        print(f"blendphot: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
