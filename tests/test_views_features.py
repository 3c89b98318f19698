"""Image features on synthetic images whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from evoemotion.errors import DataError
from evoemotion.views.features import (
    FEATURE_NAMES,
    HUE_NAMES,
    dominant_hues,
    image_features,
)


def flat(*rgb: int, size: int = 16) -> np.ndarray:
    """One image of a single colour."""
    return np.broadcast_to(np.array(rgb, np.uint8), (1, size, size, 3)).copy()


def test_pure_red_hue_saturation_colourfulness():
    features, hist = image_features(flat(255, 0, 0))
    assert hist[0, HUE_NAMES.index("red")] == 1.0
    assert hist.sum() == pytest.approx(1.0)
    assert features["saturation"][0] == pytest.approx(1.0)
    # L* of sRGB red is 53.24; Hasler & Süsstrunk: 0.3 * sqrt(255^2 + 127.5^2).
    assert features["brightness"][0] == pytest.approx(0.5324, abs=1e-3)
    assert features["colourfulness"][0] == pytest.approx(0.3 * np.hypot(255, 127.5))
    assert features["achromatic"][0] == 0.0
    assert dominant_hues(hist) == ["red:1.00"]


@pytest.mark.parametrize(
    ("rgb", "hue"),
    [((0, 255, 0), "green"), ((0, 0, 255), "blue"), ((255, 255, 0), "yellow"),
     ((0, 255, 255), "cyan"), ((255, 0, 255), "magenta"), ((255, 128, 0), "orange")],
)
def test_primary_hues_land_in_their_bins(rgb, hue):
    _, hist = image_features(flat(*rgb))
    assert HUE_NAMES[int(np.argmax(hist[0]))] == hue


def test_grey_images_have_no_hue_and_no_colour():
    features, hist = image_features(np.concatenate([flat(0, 0, 0), flat(128, 128, 128),
                                                     flat(255, 255, 255)]))
    assert np.all(hist == 0)
    assert np.all(features["achromatic"] == 1.0)
    assert np.all(features["saturation"] == 0.0)
    assert np.allclose(features["colourfulness"], 0.0)
    assert features["brightness"] == pytest.approx([0.0, 0.5359, 1.0], abs=1e-3)
    assert dominant_hues(hist) == ["", "", ""]


def test_half_red_half_blue_has_two_dominant_hues():
    img = flat(255, 0, 0, size=20)
    img[:, :, 15:] = (0, 0, 255)
    _, hist = image_features(img)
    assert dominant_hues(hist) == ["red:0.75 blue:0.25"]


def test_edge_density_of_a_step_is_two_columns():
    img = np.zeros((1, 32, 32, 3), np.uint8)
    img[:, :, 16:] = 255
    features, _ = image_features(img)
    # Sobel responds on the two columns either side of the step, out of 30 interior ones.
    assert features["edge_density"][0] == pytest.approx(2 / 30)
    assert image_features(flat(40, 90, 200))[0]["edge_density"][0] == 0.0


def test_symmetry_of_mirror_images_is_one_and_of_a_step_minus_one():
    rng = np.random.default_rng(0)
    half = rng.integers(0, 256, (1, 24, 12, 3), dtype=np.uint8)
    mirrored = np.concatenate([half, half[:, :, ::-1]], axis=2)
    features, _ = image_features(mirrored)
    assert features["symmetry_lr"][0] == pytest.approx(1.0)
    assert features["symmetry_tb"][0] < 0.5
    step = np.zeros((1, 16, 16, 3), np.uint8)
    step[:, :, 8:] = 255
    features, _ = image_features(step)
    assert features["symmetry_lr"][0] == pytest.approx(-1.0)
    assert features["symmetry_tb"][0] == pytest.approx(1.0)


def test_noise_is_asymmetric_edgy_and_colourful():
    rng = np.random.default_rng(1)
    features, _ = image_features(rng.integers(0, 256, (3, 48, 48, 3), dtype=np.uint8))
    assert np.all(np.abs(features["symmetry_lr"]) < 0.1)
    assert np.all(features["edge_density"] > 0.7)
    assert np.all(features["colourfulness"] > 100)


def test_aesthetic_is_nan_for_flat_and_in_unit_interval_otherwise():
    rng = np.random.default_rng(2)
    images = np.concatenate([flat(10, 200, 30, size=32),
                             rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)])
    aesthetic = image_features(images)[0]["aesthetic"]
    assert np.isnan(aesthetic[0])
    assert np.all((aesthetic[1:] > 0) & (aesthetic[1:] <= 1))


def test_batches_larger_than_a_chunk_match_one_by_one():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    together, hist = image_features(images)
    alone = [image_features(images[i : i + 1]) for i in (0, 33, 39)]
    for j, i in enumerate((0, 33, 39)):
        for name in FEATURE_NAMES:
            assert together[name][i] == pytest.approx(alone[j][0][name][0], nan_ok=True)
        assert np.array_equal(hist[i], alone[j][1][0])


@pytest.mark.parametrize(
    "bad", [np.zeros((1, 8, 8, 3), np.float32), np.zeros((8, 8, 3), np.uint8),
            np.zeros((1, 2, 8, 3), np.uint8), np.zeros((1, 8, 8, 4), np.uint8)],
)
def test_rejects_arrays_that_are_not_uint8_rgb_batches(bad):
    with pytest.raises(DataError, match="images"):
        image_features(bad)
