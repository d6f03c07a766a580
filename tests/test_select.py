import numpy as np
import pandas as pd
import pytest

from blendphot.errors import InputError
from blendphot.select import classify, count_table, join_catalogs, select_galaxies

COLUMNS = {"photometry": {"id": "ID", "field": "FIELD", "ra": "RA", "dec": "DEC", "mag": "MAG_F160W"},
           "morphology": {"id": "ID", "field": "FIELD", "p_sph": "F_SPH", "p_disk": "F_DISK", "p_irr": "F_IRR",
                          "re": "RE_SS"}}


def test_classes_are_exclusive_and_follow_the_paper():
    p_sph = np.array([0.9, 0.1, 0.9, 0.1, 0.5, 0.9])
    p_disk = np.array([0.1, 0.9, 0.9, 0.6, 0.5, 0.1])
    p_irr = np.array([0.1, 0.1, 0.1, 0.9, 0.5, 0.9])
    assert list(classify(p_sph, p_disk, p_irr, p_min=0.8)) == ["bulge", "disk", "bulge_disk", "irregular", None, None]


def _catalogs():
    phot = pd.DataFrame({"ID": [1, 2, 3], "FIELD": ["A", "A", "B"], "RA": [1.0, 1.1, 2.0], "DEC": [0.0, 0.1, 0.2],
                         "MAG_F160W": [22.0, 24.0, 23.0]})
    morph = pd.DataFrame({"ID": [1, 2, 3], "FIELD": ["A", "A", "B"], "F_SPH": [0.9, 0.9, 0.1],
                          "F_DISK": [0.1, 0.1, 0.95], "F_IRR": [0.0, 0.0, 0.0], "RE_SS": [0.3, 0.2, 0.5]})
    return phot, morph


def test_join_select_and_count():
    cat = join_catalogs(*_catalogs(), COLUMNS)
    sel = select_galaxies(cat, mag_max=23.5, p_min=0.8)
    assert list(sel.gid) == ["A-1", "B-3"]
    table = count_table(sel)
    assert table.set_index("class").loc["TOTAL", "selected"] == 2


def test_missing_column_is_named():
    phot, morph = _catalogs()
    with pytest.raises(InputError, match=r"morph.fits: missing column 'F_IRR' \(config key survey.candels.columns."
                                         r"morphology.p_irr\); available: \['ID', 'FIELD', .*'F_SPH'"):
        join_catalogs(phot, morph.drop(columns="F_IRR"), COLUMNS, sources=("phot.fits", "morph.fits"))


def test_nan_probability_is_named():
    phot, morph = _catalogs()
    morph.loc[1, "F_SPH"] = np.nan
    with pytest.raises(InputError, match="column 'F_SPH' has 1 non-numeric"):
        join_catalogs(phot, morph, COLUMNS)


def test_attach_truth_keeps_every_row_and_refuses_gaps():
    from blendphot.select import attach_truth

    phot, morph = _catalogs()
    phot["TRUTH_ID"] = [10, 11, 12]
    cat = join_catalogs(phot, morph, COLUMNS)
    truth = pd.DataFrame({"field": ["A", "A", "B"], "truth_id": [10, 11, 12], "flux": [1.0, 2.0, 3.0],
                          "cls": ["bulge", "bulge", "disk"]})
    out = attach_truth(cat, phot, truth)
    assert list(out.gid) == list(cat.gid) and list(out.flux_true) == [1.0, 2.0, 3.0]
    with pytest.raises(InputError, match="no true flux for 1 catalogue galaxies"):
        attach_truth(cat, phot, truth.iloc[:2])


@pytest.mark.parametrize(("table", "column"), [("photometry", "TRUTH_ID"), ("truth", "flux"), ("truth", "truth_id")])
def test_a_mock_catalogue_without_its_truth_link_names_the_file_and_column(tmp_path, table, column):
    from blendphot.select import run_select_galaxies

    phot, morph = _catalogs()
    phot["TRUTH_ID"] = [10, 11, 12]
    truth = pd.DataFrame({"field": ["A", "A", "B"], "truth_id": [10, 11, 12], "flux": [1.0, 2.0, 3.0],
                          "cls": ["bulge", "bulge", "disk"]})
    frames = {"photometry": phot, "morphology": morph, "truth": truth}
    frames[table] = frames[table].drop(columns=column)
    paths = {name: tmp_path / f"{name}.csv" for name in frames}
    for name, frame in frames.items():
        frame.to_csv(paths[name], index=False)
    with pytest.raises(InputError, match=rf"{table}\.csv: missing column '{column}'"):
        run_select_galaxies({"catalog": tmp_path / "sel.csv", "counts": tmp_path / "counts.csv"},
                            settings={"mag_max": 30.0, "p_min": 0.5}, columns=COLUMNS, photometry=[paths["photometry"]],
                            morphology=[paths["morphology"]], truth=[paths["truth"]])
    assert not (tmp_path / "sel.csv").exists()
