"""Galaxy-level train/val/test split (paper §2.3), test galaxies drawn first.

Blends are made within one split only, so no galaxy of a test blend can appear in a
training or validation blend - the leakage of the paper's public code cannot happen.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["SPLITS", "split_galaxies"]

SPLITS = ("train", "val", "test")


def split_galaxies(catalog: pd.DataFrame, fractions: dict, *, rng: np.random.Generator,
                   stratify: bool = True) -> pd.DataFrame:
    """Assign every galaxy (row of ``catalog``, column ``gid``) to one split.

    Within each stratum (morphological class when ``stratify``), galaxies are shuffled and
    the first ``round(f_test n)`` go to test, the next ``round(f_val n)`` to val, the rest to
    train. Returns a frame with columns ``gid``, ``cls`` and ``split``, in catalogue order.
    """
    if catalog["gid"].duplicated().any():
        dup = catalog.loc[catalog["gid"].duplicated(), "gid"].iat[0]
        raise ValueError(f"galaxy id {dup!r} appears twice in the catalogue")
    split = np.empty(len(catalog), dtype=object)
    groups = catalog.groupby("cls", sort=True).indices if stratify else {"all": np.arange(len(catalog))}
    for _, idx in sorted(groups.items()):
        idx = rng.permutation(np.asarray(idx))
        n_test = round(fractions["test"] * len(idx))
        n_val = round(fractions["val"] * len(idx))
        split[idx[:n_test]] = "test"
        split[idx[n_test:n_test + n_val]] = "val"
        split[idx[n_test + n_val:]] = "train"
    return pd.DataFrame({"gid": catalog["gid"].to_numpy(), "cls": catalog["cls"].to_numpy(), "split": split})
