"""Comparing the three representations of emotion on one backbone and one split.

For each representation — categorical (class distribution), VA (valence, arousal) and VAD
(valence, arousal, dominance) — a model is trained on the same datasets, features and split.
Each model's test outputs are then scored against every target: its own directly, and the
others through a small map fitted on the training rows from the model's outputs (ridge
regression to V/A/D, softmax regression to the class distribution). This answers, e.g., how
well valence is recovered from the categorical distribution compared with a VA head.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from evoemotion.emotion.datasets import VALUE_NAMES, EmotionData, split_indices
from evoemotion.emotion.evaluate import categorical_metrics, predict_rows, regression_metrics
from evoemotion.emotion.train import TrainConfig, class_names_of, train
from evoemotion.progress import Progress

#: Representation name -> heads of its model.
REPRESENTATIONS = {"categorical": ["categorical"], "va": ["va"], "vad": ["vad"]}


def ridge_map(x: np.ndarray, y: np.ndarray, x_new: np.ndarray, alpha: float = 1e-2) -> np.ndarray:
    """Fit ``y ~ x`` by ridge regression (with intercept) and predict at ``x_new``."""
    design = np.hstack([x, np.ones((len(x), 1))])
    penalty = alpha * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0
    weights = np.linalg.solve(design.T @ design + penalty, design.T @ y)
    return np.hstack([x_new, np.ones((len(x_new), 1))]) @ weights


def softmax_map(
    x: np.ndarray, probs: np.ndarray, x_new: np.ndarray, steps: int = 300, seed: int = 0
) -> np.ndarray:
    """Fit a softmax regression from ``x`` to label distributions; predict at ``x_new``."""
    torch.manual_seed(seed)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    xt = torch.as_tensor((x - mean) / std, dtype=torch.float32)
    pt = torch.as_tensor(probs, dtype=torch.float32)
    layer = torch.nn.Linear(x.shape[1], probs.shape[1])
    optimiser = torch.optim.LBFGS(layer.parameters(), max_iter=steps)

    def closure():
        optimiser.zero_grad()
        loss = -(pt * F.log_softmax(layer(xt), dim=1)).sum(dim=1).mean()
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        new = torch.as_tensor((x_new - mean) / std, dtype=torch.float32)
        return torch.softmax(layer(new), dim=1).numpy()


def _outputs(out: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    """Stack a model's representation outputs (probs or V/A/D columns) as ``(N, p)``."""
    return out["probs"] if names == ["probs"] else np.stack([out[n] for n in names], axis=1)


def compare_representations(
    datasets: list[EmotionData], config: TrainConfig, progress: Progress | None = None
) -> list[dict]:
    """Train categorical, VA and VAD models on one split and cross-score them.

    Args:
        datasets: Checked datasets providing class labels, V/A and dominance between them.
        config: Training settings shared by the three models (``heads`` is ignored).
        progress: Progress callback.

    Returns:
        One row per representation: ``{"representation", "accuracy", "top2", "kl",
        "valence_mse", "valence_r", "arousal_mse", "arousal_r", "dominance_mse",
        "dominance_r", "mapped"}`` where ``mapped`` lists the targets scored through a map
        (NaN where no test rows have the target).
    """
    class_names = class_names_of(datasets)
    parts = {d.name: split_indices(d, config.seed, config.fractions) for d in datasets}
    table = []
    for rep, heads in REPRESENTATIONS.items():
        if rep == "categorical" and not class_names:
            continue
        model = train(datasets, replace(config, heads=heads), progress=progress)
        own = ["probs"] if rep == "categorical" else [*model.regression_names]
        row = {"representation": rep, "mapped": []}
        scores: dict[str, list] = {}
        for data in datasets:
            fit, test = parts[data.name]["train"], parts[data.name]["test"]
            x_fit = _outputs(
                predict_rows(model, data, fit, config.size, cache_dir=config.cache_dir), own
            )
            x_test = _outputs(
                predict_rows(model, data, test, config.size, cache_dir=config.cache_dir), own
            )
            if class_names and data.class_names == class_names:
                labels_fit, labels = data.probs[fit], data.probs[test]
                pred = x_test if own == ["probs"] else softmax_map(x_fit, labels_fit, x_test)
                scores.setdefault("probs", []).append((pred, labels))
            for name in VALUE_NAMES:
                y_fit, y = data.values[name][fit], data.values[name][test]
                ok_fit, ok = np.isfinite(y_fit), np.isfinite(y)
                if ok.sum() < 2 or ok_fit.sum() < 2:
                    continue
                if name in own:
                    pred = x_test[:, own.index(name)]
                else:
                    pred = ridge_map(x_fit[ok_fit], y_fit[ok_fit], x_test)
                scores.setdefault(name, []).append((pred[ok], y[ok]))
        for target, pairs in scores.items():
            pred = np.concatenate([p for p, _ in pairs])
            truth = np.concatenate([t for _, t in pairs])
            if target == "probs":
                m = categorical_metrics(pred, truth, class_names)
                row.update(accuracy=m["accuracy"], top2=m["top2"], kl=m["kl"])
            else:
                m = regression_metrics(pred, truth)
                row.update({f"{target}_mse": m["mse"], f"{target}_r": m["pearson_r"]})
            if target not in own:
                row["mapped"].append(target)
        table.append(row)
    return table
