"""Galaxy-level train/val/test split (paper §2.3), test galaxies drawn first.

Blends are made within one split only, so no galaxy of a test blend can appear in a
training or validation blend - the leakage of the paper's public code cannot happen.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from blendphot.errors import InputError

__all__ = ["SPLITS", "run_split_galaxies", "split_galaxies"]

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


def run_split_galaxies(manifest_path, catalog_path, out: dict, *, settings: dict, seed: int,
                       decisions_path=None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The split_galaxies stage: apply the inspection decisions (the automatic ones of the
    manifest, overridden by a person's ``decisions_path``), split the accepted galaxies, and
    write ``out["galaxies"]`` and Table 1 (``out["table1"]``). ``settings``: the config's
    ``split``. Returns (final decisions, the split, Table 1)."""
    from blendphot import io
    from blendphot.config import child_seed
    from blendphot.inspect import apply_decisions
    from blendphot.select import count_table

    manifest = io.read_csv(manifest_path, required=["id", "cls", "decision", "reason"], dtype={"id": str})
    person = io.read_csv(decisions_path, dtype={"id": str}) if decisions_path else None
    final = apply_decisions(manifest[["id", "decision", "reason"]], person, source=decisions_path or "decisions")
    catalog = io.read_csv(catalog_path, required=["gid", "cls"])
    accepted = catalog[catalog["gid"].isin(final.loc[final["decision"] == "accept", "id"])]
    if accepted.empty:
        reasons = final["reason"].fillna("").value_counts().to_dict()
        raise InputError(f"{manifest_path}: none of the {len(final)} galaxies is accepted (reasons: {reasons}); "
                         "see inspect.reject_flags and inspect.decisions")
    rng = np.random.default_rng(child_seed(seed, "split"))
    galaxies = split_galaxies(accepted, settings["fractions"], rng=rng, stratify=settings["stratify"])
    counts = galaxies["split"].value_counts()
    for name in SPLITS:
        if settings["fractions"][name] > 0 and counts.get(name, 0) < 2:
            raise InputError(f"the {name} split gets {counts.get(name, 0)} of the {len(accepted)} accepted galaxies; "
                             "its blends need at least two (split.fractions, or more galaxies)")
    table1 = count_table(catalog, "before_inspection").merge(count_table(accepted, "after_inspection"), on="class")
    io.write_csv(out["galaxies"], galaxies)
    io.write_csv(out["table1"], table1)
    return final, galaxies, table1
