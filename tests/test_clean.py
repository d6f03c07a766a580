import numpy as np
import pandas as pd

from blendphot.clean import CleanParams, clean_stamp, clean_stamps, galaxy_rng, qa_summary


def test_neighbour_is_removed_with_background_noise(two_galaxy_stamp):
    image, weight, truth, neighbour = two_galaxy_stamp
    result = clean_stamp(image, weight, CleanParams(), galaxy_rng(1, "g"))
    assert result.reason is None
    cleaned = result.image
    region = neighbour > 1e-3
    # the neighbour's flux is gone: what is left there is pure noise at the right level
    assert abs(cleaned[region].mean()) < 0.003
    assert 0.85 < cleaned[region].std() / 0.01 < 1.15
    # the central galaxy is untouched and no second noise layer was added anywhere else
    untouched = ~region & (truth < 1e-3)
    changed = cleaned != image
    assert not changed[truth > 1e-2].any()
    assert changed[untouched].mean() < 0.5 * changed[region].mean()
    info = result.info
    assert info["n_sources_after"] == 1 and info["n_neighbours"] == 1
    assert abs(info["flux_auto"] / 40.0 - 1) < 0.05  # Kron flux of a Gaussian: ~all of it
    assert result.central_mask[64, 64] == 1 and result.central_mask[30, 100] == 0
    assert 0.9 < info["replaced_rms_over_weight_sigma"] < 1.1


def test_cleaning_is_seeded(two_galaxy_stamp):
    image, weight, *_ = two_galaxy_stamp
    a = clean_stamp(image, weight, CleanParams(), galaxy_rng(7, "g")).image
    b = clean_stamp(image, weight, CleanParams(), galaxy_rng(7, "g")).image
    c = clean_stamp(image, weight, CleanParams(), galaxy_rng(8, "g")).image
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_too_little_background_falls_back_explicitly(two_galaxy_stamp):
    image, weight, *_ = two_galaxy_stamp
    params = CleanParams(min_background_pixels=10**6)  # more than any stamp has
    result = clean_stamp(image, weight, params, galaxy_rng(0, "g"))
    assert result.reason is None and result.info["low_background"]
    assert np.isfinite(result.image).all()


def test_no_background_at_all_drops_the_stamp(two_galaxy_stamp):
    image, weight, *_ = two_galaxy_stamp
    covered = np.zeros_like(weight)
    covered[56:72, 56:72] = weight[56:72, 56:72]  # data only under the central galaxy itself
    result = clean_stamp(image, covered, CleanParams(), galaxy_rng(0, "g"))
    assert result.reason in ("no_background", "central_not_detected") and result.image is None


def test_clean_stamps_table_and_summary(two_galaxy_stamp):
    image, weight, *_ = two_galaxy_stamp
    empty = np.random.default_rng(1).normal(0, 0.01, (128, 128)).astype(np.float32)
    images = np.stack([image, empty])
    weights = np.stack([weight, weight])
    cat = pd.DataFrame({"gid": ["a", "b"], "cls": ["disk", "disk"]})
    c = clean_stamps(images, weights, cat, CleanParams(), seed=1, zeropoint=25.9463, progress=False)
    cleaned, originals, masks, table, dropped = c.images, c.originals, c.masks, c.catalog, c.dropped
    assert list(table.gid) == ["a"] and list(dropped.reason) == ["central_not_detected"]
    assert cleaned.shape == originals.shape == masks.shape == (1, 128, 128)
    qa = qa_summary(table, dropped)
    assert qa == c.qa and qa["single_source_fraction"] == 1.0 and qa["dropped_central_not_detected"] == 1
