"""Objectives: confidence, the Ross-Ralph aesthetic measure, none."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from evoemotion.objectives import (
    BINS_PER_SIGMA,
    DETECTION_THRESHOLD,
    aesthetic,
    confidence,
    constant,
    deviation_from_normality,
    gradient_response,
)


def smooth_images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """Random images with some structure (blocky noise upsampled), uint8 NHWC."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, size // 4, size // 4, 3))
    big = small.repeat(4, axis=1).repeat(4, axis=2).astype(np.float64)
    big += rng.normal(0, 12, big.shape)
    return np.clip(big, 0, 255).astype(np.uint8)


def direct_dfn(image: np.ndarray) -> float:
    """DFN of one image written out plainly with np.histogram (an independent check)."""
    c = image.astype(np.float64)
    d = 0.001 * 0.5 * math.hypot(*image.shape[:2])
    grad2 = ((c[:-1, :-1] - c[1:, 1:]) ** 2 + (c[1:, :-1] - c[:-1, 1:]) ** 2).sum(-1) / d**2
    s = np.sqrt(grad2).ravel()
    r = np.log(s[s > DETECTION_THRESHOLD] / DETECTION_THRESHOLD)
    mu = (r**2).sum() / r.sum()
    sigma = math.sqrt((r * (r - mu) ** 2).sum() / r.sum())
    width = sigma / BINS_PER_SIGMA
    lo = mu + math.floor((r.min() - mu) / width) * width
    hi = mu + (math.floor((r.max() - mu) / width) + 1) * width
    edges = np.linspace(lo, hi, round((hi - lo) / width) + 1)
    p, _ = np.histogram(r, bins=edges, weights=r)
    p = p / r.sum()
    q = np.diff(norm.cdf(edges, loc=mu, scale=sigma))
    keep = p > 0
    return float(1000 * (p[keep] * np.log(p[keep] / q[keep])).sum())


def test_confidence_is_top_probability_and_nan_for_bad_rows():
    probs = np.array([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25], [np.nan, 0.5, 0.5]])
    result = confidence(probs)
    assert result[:2].tolist() == [0.7, 0.5]
    assert np.isnan(result[2])


def test_constant_objective_is_one_per_image():
    assert constant(4).tolist() == [1.0] * 4


def test_gradient_response_of_a_step_edge_follows_the_roberts_cross_formula():
    image = np.zeros((1, 8, 8, 3), np.uint8)
    image[0, :, 4:, 0] = 200
    response = gradient_response(image)[0]
    d = 0.001 * 0.5 * math.hypot(8, 8)
    expected = math.log(math.sqrt(2 * 200.0**2) / d / DETECTION_THRESHOLD)
    assert response[:, 3] == pytest.approx(np.full(7, expected))
    assert np.count_nonzero(response) == 7


def test_dfn_matches_a_direct_per_image_computation():
    images = smooth_images(3)
    batch = deviation_from_normality(images)
    for image, value in zip(images, batch, strict=True):
        assert value == pytest.approx(direct_dfn(image), rel=1e-6)


def test_dfn_is_undefined_for_a_flat_image_and_aesthetic_rejects_it():
    flat = np.full((2, 16, 16, 3), 90, np.uint8)
    assert np.isnan(deviation_from_normality(flat)).all()
    assert np.isnan(aesthetic(flat)).all()


def test_aesthetic_is_invariant_to_flips_and_channel_order():
    images = smooth_images(2, seed=3)
    base = aesthetic(images)
    assert aesthetic(images[:, :, ::-1]) == pytest.approx(base)
    assert aesthetic(images[:, ::-1, ::-1]) == pytest.approx(base)
    assert aesthetic(images[..., ::-1]) == pytest.approx(base)


def test_aesthetic_lies_in_unit_interval_and_falls_with_deviation():
    images = smooth_images(4, seed=5)
    score = aesthetic(images)
    dfn = deviation_from_normality(images)
    assert ((score > 0) & (score <= 1)).all()
    assert np.argsort(score).tolist() == np.argsort(-dfn).tolist()


def test_gradient_response_rejects_non_rgb_input():
    with pytest.raises(ValueError, match="shape"):
        gradient_response(np.zeros((2, 8, 8), np.uint8))
