"""Objectives: what an elite is judged by inside its archive cell.

Three objectives, each a vectorised function of a batch and each in ``[0, 1]`` so that an
archive's QD score is a plain sum (no offset needed):

- ``confidence``: the probability of the top class (:func:`confidence`);
- ``aesthetic``: Ross, Ralph & Zong (2006)'s model of aesthetics, turned into a score by
  :func:`aesthetic` from the deviation of the colour-gradient distribution from a normal
  "bell curve" (:func:`deviation_from_normality`);
- ``none``: every image scores 1, i.e. pure diversity (:func:`constant`).

Reference: B. J. Ross, W. Ralph and H. Zong, "Evolutionary image synthesis using a model
of aesthetics", IEEE CEC 2006, pp. 1087-1094; W. Ralph, "Painting the bell curve" (2006).
"""

from __future__ import annotations

from math import sqrt
from typing import Any

import numpy as np

#: Names accepted by ``--objective``.
OBJECTIVES = ("confidence", "aesthetic", "none")

#: Ross & Ralph's detection threshold S0 of the gradient stimulus (colours on 0..255).
DETECTION_THRESHOLD = 2.0

#: Histogram bins per standard deviation of the response distribution (width sigma/100).
BINS_PER_SIGMA = 100

#: Bins kept on each side of the mean, in standard deviations; farther responses are
#: counted in the outermost bin, which bounds memory for heavy-tailed images.
TAIL_SIGMAS = 8


def confidence(probs: Any) -> Any:
    """Return the probability of the top class of each row.

    Args:
        probs: ``(N, K)`` class probabilities, a numpy array or a torch tensor (then the
            result is a tensor and differentiable).

    Returns:
        ``(N,)`` float64 array (or tensor); non-finite rows give NaN.
    """
    if not isinstance(probs, np.ndarray) and hasattr(probs, "amax"):
        return probs.amax(1)  # torch: NaN propagates
    probs = np.asarray(probs, dtype=np.float64)
    finite = np.isfinite(probs).all(axis=1)
    top = probs.max(axis=1, initial=-np.inf)
    return np.where(finite, top, np.nan)


def constant(n: int) -> np.ndarray:
    """Return the objective of the ``none`` setting: 1 for each of ``n`` images.

    Args:
        n: Number of images.

    Returns:
        ``(n,)`` float64 array of ones.
    """
    return np.ones(n, dtype=np.float64)


def gradient_response(images: np.ndarray) -> np.ndarray:
    """Return Ross & Ralph's response ``R = log(S / S0)`` to the colour gradient.

    The stimulus ``S`` at a pixel is ``sqrt(|grad r|^2 + |grad g|^2 + |grad b|^2)`` with
    each channel's squared gradient from the Roberts cross,
    ``((c[i,j] - c[i+1,j+1])^2 + (c[i+1,j] - c[i,j+1])^2) / d^2``, where ``d`` is 0.1% of
    half the image diagonal, on colours 0..255. Pixels below the detection threshold
    (``S <= S0``) give no response and are returned as 0.

    Args:
        images: ``(N, H, W, 3)`` uint8 images, ``H, W >= 2``.

    Returns:
        ``(N, H-1, W-1)`` float64 array of non-negative responses.

    Raises:
        ValueError: ``images`` is not a batch of RGB images of at least 2x2 pixels.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or min(images.shape[1:3]) < 2:
        raise ValueError(f"images must have shape (N, H, W, 3) with H, W >= 2, got {images.shape}")
    c = images.astype(np.float64)
    diagonal = 0.001 * 0.5 * sqrt(images.shape[1] ** 2 + images.shape[2] ** 2)
    cross_a = c[:, :-1, :-1] - c[:, 1:, 1:]
    cross_b = c[:, 1:, :-1] - c[:, :-1, 1:]
    stimulus = np.sqrt((cross_a**2 + cross_b**2).sum(axis=-1)) / diagonal
    with np.errstate(divide="ignore"):
        response = np.log(stimulus / DETECTION_THRESHOLD)
    return np.where(response > 0, response, 0.0)


def deviation_from_normality(images: np.ndarray) -> np.ndarray:
    """Return Ross & Ralph's deviation from normality (DFN) of each image; lower is better.

    The responses ``R`` of :func:`gradient_response` form a distribution in which each
    pixel is weighted by its own response. Its mean and variance are
    ``mu = sum(R^2) / sum(R)`` and ``sigma^2 = sum(R (R - mu)^2) / sum(R)``. The weighted
    histogram ``p`` of ``R`` in bins of width ``sigma / 100`` (anchored at ``mu``) is
    compared with the normal ``N(mu, sigma^2)`` mass ``q`` of the same bins:
    ``DFN = 1000 * sum(p * log(p / q))``.

    Args:
        images: ``(N, H, W, 3)`` uint8 images.

    Returns:
        ``(N,)`` float64 array; NaN for images without any response (e.g. flat colour)
        or with a single response value, whose distribution has no bell to compare.
    """
    from scipy.special import ndtr

    response = gradient_response(images).reshape(len(images), -1)
    n = len(response)
    total = response.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = (response**2).sum(axis=1) / total
        sigma = np.sqrt((response * (response - mu[:, None]) ** 2).sum(axis=1) / total)
    valid = np.isfinite(sigma) & (sigma > 0)
    dfn = np.full(n, np.nan)
    if not valid.any():
        return dfn
    response, mu, sigma, total = response[valid], mu[valid], sigma[valid], total[valid]
    half = TAIL_SIGMAS * BINS_PER_SIGMA
    width = 2 * half
    z = (response - mu[:, None]) / sigma[:, None]
    bins = np.clip(np.floor(z * BINS_PER_SIGMA), -half, half - 1).astype(np.int64) + half
    rows = np.repeat(np.arange(len(response)), response.shape[1])
    p = (
        np.bincount(
            (rows * width + bins.ravel()), weights=response.ravel(), minlength=len(response) * width
        ).reshape(len(response), width)
        / total[:, None]
    )
    edges = (np.arange(width + 1) - half) / BINS_PER_SIGMA
    cdf = ndtr(edges)
    cdf[0], cdf[-1] = 0.0, 1.0
    q = np.maximum(np.diff(cdf), np.finfo(np.float64).tiny)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / q), 0.0)
    dfn[valid] = 1000.0 * terms.sum(axis=1)
    return dfn


def aesthetic(images: np.ndarray) -> np.ndarray:
    """Return the aesthetic objective ``exp(-DFN / 1000)`` in ``(0, 1]``; higher is better.

    ``DFN / 1000`` is the Kullback-Leibler divergence of the gradient-response histogram
    from the normal bell curve (:func:`deviation_from_normality`), so the score is 1 for a
    perfect bell curve and falls towards 0 as the distribution departs from it.

    Args:
        images: ``(N, H, W, 3)`` uint8 images.

    Returns:
        ``(N,)`` float64 array; NaN where the DFN is undefined (the image is then rejected).
    """
    return np.exp(-deviation_from_normality(images) / 1000.0)
