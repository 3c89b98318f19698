"""Categorical targets (soft, category, mixed) and class-balanced losses on small data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from evoemotion.emotion import build_model
from evoemotion.emotion.datasets import EmotionData, load_emotion6
from evoemotion.emotion.train import (
    Rows,
    TrainConfig,
    balance_terms,
    check_categories,
    class_names_of,
    fit_heads,
    targets,
)
from evoemotion.errors import ConfigError


def _data(name="e", classes=("a", "b", "neutral"), categories=(0, 1, -1), probs=None):
    n = 3
    probs = np.array(probs if probs is not None else [[0.2, 0.7, 0.1]] * n, dtype=float)
    return EmotionData(
        name=name,
        root=Path("."),
        items=[f"{i}.png" for i in range(n)],
        class_names=list(classes),
        probs=probs,
        values={v: np.full(n, np.nan) for v in ("valence", "arousal", "dominance")},
        strata=np.zeros(n, dtype=int),
        categories=None if categories is None else np.array(categories),
    )


def test_emotion6_categories_are_folders_with_rater_neutral(tmp_path):
    root = tmp_path / "e6"
    root.mkdir()
    header = "file\tv\ta\t" + "\t".join(f"p{i}" for i in range(7))
    rows = [
        "anger/1.jpg\t3\t6\t0.1\t0\t0.6\t0\t0\t0\t0.3",  # raters say fear: category anger
        "joy/2.jpg\t7\t5\t0\t0\t0\t0.3\t0\t0\t0.7",  # raters say neutral: category neutral
        "other/3.jpg\t5\t5\t0\t0\t0\t1\t0\t0\t0",  # a folder that is no class: unknown
    ]
    (root / "ground_truth.txt").write_text(header + "\n" + "\n".join(rows) + "\n")
    data = load_emotion6(root)
    assert data.categories.tolist() == [0, 6, -1]
    assert data.subset([2, 0]).categories.tolist() == [-1, 0]


def test_targets_for_each_label_choice():
    data = _data()
    rows = np.arange(3)
    soft, _ = targets(data, rows, 3, "soft")
    assert np.allclose(soft, data.probs)
    category, _ = targets(data, rows, 3, "category")
    assert category[:2].tolist() == [[1, 0, 0], [0, 1, 0]] and np.isnan(category[2]).all()
    mixed, _ = targets(data, rows, 3, "mixed", mix=0.25)
    assert np.allclose(mixed[0], 0.75 * data.probs[0] + [0.25, 0, 0])
    assert np.isnan(mixed[2]).all()  # unknown category: no target


def test_category_labels_need_categories_and_shared_classes():
    oasis_like = _data("oasis", classes=(), categories=None)
    oasis_like.class_names, oasis_like.probs = [], None
    check_categories([_data(), oasis_like], "category")  # a class-less dataset is fine
    check_categories([_data(categories=None)], "soft")
    with pytest.raises(ConfigError, match=r"dataset raters has classes \['a', 'b', 'neutral'\]"):
        check_categories([_data("raters", categories=None)], "category")
    with pytest.raises(ConfigError, match=r"no dataset has collected-for categories: oasis"):
        check_categories([oasis_like], "mixed")
    with pytest.raises(ConfigError, match=r"datasets e and f have different classes"):
        class_names_of([_data(), _data("f", classes=("a", "b", "c"))])
    with pytest.raises(ConfigError, match="labels 'hard'"):
        TrainConfig(labels="hard").validate()
    with pytest.raises(ConfigError, match="balance 'equal'"):
        TrainConfig(balance="equal").validate()
    with pytest.raises(ConfigError, match="mix must be between 0 and 1"):
        TrainConfig(mix=1.5).validate()


def test_balance_terms_follow_the_training_prior():
    probs = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [np.nan, np.nan]])
    weights = balance_terms(probs, "weights")
    assert torch.allclose(weights.weights, torch.tensor([1 / (2 * 0.75), 1 / (2 * 0.25)]))
    assert torch.equal(weights.offset, torch.zeros(2))
    prior = balance_terms(probs, "prior")
    assert torch.allclose(prior.offset, torch.log(torch.tensor([0.75, 0.25])))
    assert torch.equal(prior.weights, torch.ones(2))


def test_balanced_losses_recover_a_rare_class():
    # a rare class (10 %) overlapping a common one: the plain loss sacrifices its recall
    model = build_model("mobilenet_v3_small", ["categorical"], ["common", "rare"])
    rng = np.random.default_rng(0)
    n, dim = 400, model.embedding_dim
    label = (rng.random(n) < 0.1).astype(int)
    features = np.zeros((n, dim), dtype=np.float32)  # one informative feature
    features[:, 0] = rng.normal(size=n) + 1.5 * label
    rows = Rows(features, np.eye(2)[label], np.full((n, 3), np.nan))
    config = TrainConfig(hidden=0, dropout=0.0, l2=1e-3, lr=1e-2, batch_size=64, seed=0)

    def rare_recall(balance: str) -> float:
        chosen = TrainConfig(**{**config.__dict__, "balance": balance})
        fit_heads(model, rows, None, config=chosen, stop_at={"categorical": 30})
        with torch.no_grad():
            guess = model.predict_from_embedding(torch.from_numpy(features))["probs"].argmax(1)
        return float((guess.numpy()[label == 1] == 1).mean())

    assert rare_recall("none") < 0.4
    assert rare_recall("weights") > 0.6 and rare_recall("prior") > 0.6
