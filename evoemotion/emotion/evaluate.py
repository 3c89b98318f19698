"""Evaluating emotion models on held-out rows.

Categorical heads: argmax accuracy, top-2 accuracy, mean KL divergence from the label
distribution to the prediction, the confusion matrix (rows: label argmax, columns: predicted),
and, when a ``neutral`` class exists, accuracy over the other classes on rows whose label is
not neutral ("6-class" on Emotion6). Class-balanced metrics (per-class recall, precision and
F1, balanced accuracy = mean recall, macro-F1) are computed on two label views: the raters'
top label (``"categorical"``) and, for datasets that know it, the category each image was
collected for (``"category"``; Emotion6: its keyword folder, neutral where the raters' top
label is neutral). Regression outputs: MSE, MAE, Pearson r and Lin's
concordance correlation coefficient (CCC) per dimension, and ``va_mse``, the mean of the
valence and arousal MSEs. Only the model's saved test split of a dataset is evaluated; a
dataset the model never saw is evaluated whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from evoemotion.atomic import atomic_write
from evoemotion.emotion.datasets import VALUE_NAMES, EmotionData
from evoemotion.emotion.features import extract_features
from evoemotion.emotion.model import EmotionModel
from evoemotion.errors import DataError

#: Class left out of the "without neutral" accuracy.
NEUTRAL = "neutral"


def class_metrics(pred: np.ndarray, truth: np.ndarray, class_names: list[str]) -> dict:
    """Class-balanced metrics of predicted distributions against hard labels.

    Recall is NaN for a class without labelled rows (left out of the means); precision is 0
    for a class never predicted; F1 is 0 where precision and recall are both 0.

    Args:
        pred: ``(N, K)`` predicted probabilities (their argmax is the prediction).
        truth: ``(N,)`` label indices.
        class_names: The K class names.

    Returns:
        ``n``, ``accuracy``, ``balanced_accuracy`` (mean recall over classes with rows),
        ``macro_f1``, ``per_class`` (name -> ``support``, ``recall``, ``precision``,
        ``f1``), ``confusion`` (K x K counts, rows: label) and, with a neutral class,
        ``balanced_accuracy_without_neutral``: mean recall over the other classes on rows
        not labelled neutral, predicting the most probable non-neutral class.
    """
    k = len(class_names)
    guess = pred.argmax(axis=1)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (truth, guess), 1)
    hits, support, predicted = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, hits / support, np.nan)
        precision = np.where(predicted > 0, hits / predicted, 0.0)
        both = precision + np.nan_to_num(recall)
        f1 = np.where(both > 0, 2 * precision * np.nan_to_num(recall) / both, 0.0)
    present = support > 0
    out = {
        "n": int(len(truth)),
        "accuracy": float((truth == guess).mean()) if len(truth) else float("nan"),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "per_class": {
            name: {
                "support": int(support[i]),
                "recall": float(recall[i]),
                "precision": float(precision[i]),
                "f1": float(f1[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion": confusion.tolist(),
    }
    if NEUTRAL in class_names and k > 2:
        keep = [i for i, c in enumerate(class_names) if c != NEUTRAL]
        rows = np.isin(truth, keep)
        sub_guess = np.array(keep)[pred[rows][:, keep].argmax(axis=1)]
        recalls = [
            (sub_guess[truth[rows] == c] == c).mean() for c in keep if (truth[rows] == c).any()
        ]
        out["balanced_accuracy_without_neutral"] = (
            float(np.mean(recalls)) if recalls else float("nan")
        )
    return out


def categorical_metrics(pred: np.ndarray, label: np.ndarray, class_names: list[str]) -> dict:
    """Metrics of predicted class distributions against label distributions.

    Args:
        pred: ``(N, K)`` predicted probabilities.
        label: ``(N, K)`` label distributions (one-hot for hard labels).
        class_names: The K class names.

    Returns:
        ``n``, ``accuracy``, ``top2``, ``kl`` (mean KL(label || pred), nats), ``confusion``
        (K x K counts as nested lists), the class-balanced metrics of :func:`class_metrics`
        on the label argmax and, with a neutral class, ``accuracy_without_neutral``.
    """
    truth = label.argmax(axis=1)
    top2 = np.argsort(-pred, axis=1)[:, :2]
    safe = np.clip(pred, 1e-12, None)
    terms = np.where(label > 0, label * (np.log(np.clip(label, 1e-12, None)) - np.log(safe)), 0.0)
    k = len(class_names)
    out = {
        **class_metrics(pred, truth, class_names),
        "top2": float((top2 == truth[:, None]).any(axis=1).mean()),
        "kl": float(terms.sum(axis=1).mean()),
    }
    if NEUTRAL in class_names and k > 2:
        keep = [i for i, c in enumerate(class_names) if c != NEUTRAL]
        rows = np.isin(truth, keep)
        sub_guess = np.array(keep)[pred[rows][:, keep].argmax(axis=1)]
        out["accuracy_without_neutral"] = float((sub_guess == truth[rows]).mean())
    return out


def regression_metrics(pred: np.ndarray, target: np.ndarray) -> dict:
    """MSE, MAE, Pearson r and CCC of one regression output.

    Args:
        pred: ``(N,)`` predictions.
        target: ``(N,)`` targets.

    Returns:
        ``n``, ``mse``, ``mae``, ``pearson_r``, ``ccc`` (r and CCC are NaN for constant input).
    """
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    diff = pred - target
    mp, mt = pred.mean(), target.mean()
    vp, vt = pred.var(), target.var()
    cov = ((pred - mp) * (target - mt)).mean()
    r = cov / np.sqrt(vp * vt) if vp > 0 and vt > 0 else float("nan")
    denominator = vp + vt + (mp - mt) ** 2
    return {
        "n": int(len(pred)),
        "mse": float((diff**2).mean()),
        "mae": float(np.abs(diff).mean()),
        "pearson_r": float(r),
        "ccc": float(2 * cov / denominator) if denominator > 0 else float("nan"),
    }


def predict_rows(
    model: EmotionModel,
    data: EmotionData,
    rows: np.ndarray,
    size: int | None = None,
    autocast: bool = False,
    cache_dir: str | Path | None = None,
    progress=None,
) -> dict[str, np.ndarray]:
    """Model outputs for some rows of a dataset (full view; features cached).

    Args:
        model: The model.
        data: The dataset.
        rows: Row indices.
        size: Input side; default the model's input size.
        autocast: bfloat16 autocast for the backbone.
        cache_dir: Feature cache (None: default, "": none).
        progress: Reports the images scored (see :mod:`evoemotion.progress`).

    Returns:
        Output name -> numpy array (as :meth:`EmotionModel.forward`).
    """
    feats = extract_features(
        model,
        [data.path(i) for i in rows],
        size=size,
        autocast=autocast,
        cache_dir=False if cache_dir == "" else cache_dir,
        progress=progress,
    )
    with torch.no_grad():
        out = model.predict_from_embedding(torch.as_tensor(feats, device=model.feature_mean.device))
    return {k: v.cpu().numpy() for k, v in out.items()}


def evaluate_rows(
    model: EmotionModel,
    data: EmotionData,
    rows: np.ndarray,
    size: int | None = None,
    autocast: bool = False,
    cache_dir: str | Path | None = None,
    progress=None,
) -> dict:
    """Every applicable metric of ``model`` on some rows of ``data``.

    Args:
        model: The model.
        data: The dataset.
        rows: Row indices to evaluate.
        size: Input side; default the model's input size.
        autocast: bfloat16 autocast for the backbone.
        cache_dir: Feature cache (None: default, "": none).
        progress: Reports the images scored (see :mod:`evoemotion.progress`).

    Returns:
        ``{"n", "categorical"?, "category"?, "valence"?, "arousal"?, "dominance"?,
        "va_mse"?}``: ``categorical`` scores the label distributions (argmax view),
        ``category`` the collected-for categories (:func:`class_metrics`); an output is
        scored only on rows whose target is known.
    """
    out = predict_rows(model, data, rows, size, autocast, cache_dir, progress)
    result: dict = {"n": int(len(rows))}
    if model.class_names and data.probs is not None and data.class_names == model.class_names:
        labels = data.probs[rows]
        known = np.isfinite(labels).all(axis=1)
        if known.any():
            result["categorical"] = categorical_metrics(
                out["probs"][known], labels[known], model.class_names
            )
        if data.categories is not None and (data.categories[rows] >= 0).any():
            category = data.categories[rows]
            result["category"] = class_metrics(
                out["probs"][category >= 0], category[category >= 0], model.class_names
            )
    for name in model.regression_names:
        target = data.values[name][rows] if name in VALUE_NAMES else np.full(len(rows), np.nan)
        known = np.isfinite(target)
        if known.sum() >= 2:
            result[name] = regression_metrics(out[name][known], target[known])
    if "valence" in result and "arousal" in result:
        result["va_mse"] = (result["valence"]["mse"] + result["arousal"]["mse"]) / 2
    return result


def held_out_rows(model: EmotionModel, data: EmotionData, part: str = "test") -> np.ndarray:
    """Rows of ``data`` in the model's saved split part (all rows for an unseen dataset).

    Args:
        model: A trained model whose metadata holds its split.
        data: The dataset.
        part: ``"test"`` or ``"val"``.

    Returns:
        Row indices.

    Raises:
        DataError: the saved split names items the dataset does not have.
    """
    saved = model.metadata.get("split", {}).get("datasets", {}).get(data.name)
    if saved is None:
        return np.arange(len(data))
    index = {item: i for i, item in enumerate(data.items)}
    absent = [item for item in saved[part] if item not in index]
    if absent:
        raise DataError(
            f"{len(absent)} {part} item(s) of the model's split are not in dataset "
            f"{data.name} at {data.root} (first: {absent[0]}); is it the same dataset?"
        )
    return np.array(sorted(index[item] for item in saved[part]), dtype=int)


#: Label views of a dataset's metrics, as keys of :func:`evaluate_rows`' result.
LABEL_VIEWS = {"categorical": "top rater label", "category": "collected-for category"}


def save_class_report(metrics: dict, stem: str | Path) -> list[Path]:
    """Write a dataset's class-balanced metrics as ``STEM.csv`` and ``STEM.json``.

    The CSV has one row per label view and class (``view, class, support, recall,
    precision, f1``) and one ``all`` row per view with accuracy, balanced accuracy and
    macro-F1; the JSON holds the same numbers and each view's confusion matrix.

    Args:
        metrics: One dataset's result of :func:`evaluate_rows`.
        stem: Output path without suffix.

    Returns:
        The written paths (none when the result has no categorical view).
    """
    views = {v: metrics[v] for v in LABEL_VIEWS if v in metrics}
    if not views:
        return []
    lines = ["view,class,support,recall,precision,f1,accuracy,balanced_accuracy,macro_f1"]
    report = {}
    for view, m in views.items():
        for name, c in m["per_class"].items():
            lines.append(
                f"{view},{name},{c['support']},{c['recall']:.6g},{c['precision']:.6g},"
                f"{c['f1']:.6g},,,"
            )
        lines.append(
            f"{view},all,{m['n']},,,,{m['accuracy']:.6g},{m['balanced_accuracy']:.6g},"
            f"{m['macro_f1']:.6g}"
        )
        report[view] = {
            "label": LABEL_VIEWS[view],
            **{key: m[key] for key in m if key not in ("top2", "kl")},
        }
    stem = Path(stem)
    csv_path, json_path = stem.with_suffix(".csv"), stem.with_suffix(".json")
    atomic_write(csv_path, ("\n".join(lines) + "\n").encode())
    atomic_write(json_path, json.dumps(report, indent=2).encode())
    return [csv_path, json_path]


def save_confusion_png(
    confusion: list[list[int]],
    class_names: list[str],
    path: str | Path,
    title: str = "",
    ylabel: str = "label (argmax)",
) -> Path:
    """Draw a row-normalised confusion matrix with counts to a PNG.

    Args:
        confusion: K x K counts (rows: label, columns: prediction).
        class_names: Class names.
        path: Output file.
        title: Figure title.
        ylabel: What the rows are.

    Returns:
        The written path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(confusion)
    share = counts / np.clip(counts.sum(axis=1, keepdims=True), 1, None)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(class_names), 0.8 + 0.7 * len(class_names)))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), n in np.ndenumerate(counts):
        ax.text(
            j, i, str(n), ha="center", va="center", color="white" if share[i, j] > 0.5 else "black"
        )
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
