"""Where the survey's files come from: local paths checked when the workflow starts.

Every survey file of the config (a CANDELS mosaic, weight map or catalogue, a stamp set) is
given either by ``url`` (downloaded by a local rule) or by ``path`` (a declared input: a file
changed in place reruns what reads it). A ``path`` that does not exist stops the workflow
before anything runs, naming the config key and saying how to get the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from blendphot.errors import ConfigError, InputError

__all__ = ["CATALOG_HELP", "DECISIONS_HELP", "check_local_file", "check_local_path", "stampset_files"]

CATALOG_HELP = (
    "The Dimauro et al. (2018) bulge/disc catalogue, which also holds the Huertas-Company (2015) "
    "morphologies, is distributed only through the LERMA CANDELS web form "
    "(https://lerma.obspm.fr/huertas/form_CANDELS), which serves a web page, not the file: "
    "download the catalogue there in a browser (FITS or CSV), save it, e.g. as "
    "data/dimauro2018_candels.fits, set this key's `path` to it (and remove `url`), and map its "
    "columns under survey.candels.columns (README.md, 'Real data')."
)


DECISIONS_HELP = ("Export the decisions from the review page (results/inspect/index.html, key 'e') to that path, "
                  "or set the key to null to keep the automatic decisions.")


def check_local_path(path: str | None, key: str, *, help: str = "") -> None:
    """Raise a ConfigError naming config key ``key`` when ``path`` is set and does not exist."""
    if path and not Path(path).exists():
        where = f" (relative to {os.getcwd()})" if not Path(path).is_absolute() else ""
        raise ConfigError(f"config key '{key}': {path} does not exist{where}. {help}".rstrip())


def check_local_file(entry: dict, key: str, *, help: str = "") -> None:
    """:func:`check_local_path` of a file entry's ``path`` (config key ``key.path``)."""
    check_local_path(entry.get("path"), f"{key}.path", help=help)


def stampset_files(path: str | os.PathLike, key: str = "survey.stamps") -> list[str]:
    """The files of a local stamp set (a directory or an archive): the import's declared inputs.
    ``key``: the config key that gave ``path``, named in the error."""
    from blendphot.stampset import FILES, find_stampset

    path = Path(path)
    if path.is_file():
        return [str(path)]
    try:
        root = find_stampset(path)
    except InputError as exc:
        raise ConfigError(f"config key '{key}.path': {exc}") from None
    return [str(root / f) for f in FILES]
