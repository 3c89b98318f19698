"""Training, evaluation metrics, feature cache and representation comparison on tiny data."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from evoemotion.emotion import build_model, load_model, save_model
from evoemotion.emotion.compare import compare_representations
from evoemotion.emotion.datasets import load_csv, split_indices
from evoemotion.emotion.evaluate import (
    categorical_metrics,
    class_metrics,
    evaluate_rows,
    held_out_rows,
    regression_metrics,
    save_class_report,
)
from evoemotion.emotion.features import VIEWS, extract_features, view_image
from evoemotion.emotion.train import (
    Rows,
    TrainConfig,
    cross_validate,
    fit_heads,
    fold_parts,
    train,
)
from evoemotion.errors import ConfigError


def tiny_config(tmp_path, **changes) -> TrainConfig:
    """Small random-weight backbone at 32 px, a few epochs."""
    base = {
        "backbone": "mobilenet_v3_small",
        "weights": "none",
        "heads": ["categorical", "va"],
        "views": ["full", "flip"],
        "hidden": 0,
        "dropout": 0.0,
        "l2": 1e-3,
        "size": 32,
        "epochs": 40,
        "patience": 40,
        "lr": 1e-2,
        "batch_size": 16,
        "fractions": (0.5, 0.25, 0.25),
        "device": "cpu",
        "cache_dir": str(tmp_path / "cache"),
    }
    return TrainConfig(**{**base, **changes})


@pytest.fixture
def warm_cool(tmp_path):
    """16 noisy images: 'warm' (red, high valence) and 'cool' (blue, low valence)."""
    rng = np.random.default_rng(0)
    lines = ["path,label,valence,arousal,dominance"]
    for i in range(16):
        warm = i % 2 == 0
        h, w = rng.integers(20, 40, size=2)
        img = rng.integers(0, 60, (h, w, 3))
        img[..., 0 if warm else 2] += 190
        Image.fromarray(img.astype(np.uint8)).save(tmp_path / f"{i}.png")
        v, a = (7.0, 6.0) if warm else (3.0, 2.5)
        lines.append(f"{i}.png,{'warm' if warm else 'cool'},{v},{a},{5 + (1 if warm else -1)}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    return load_csv(tmp_path / "labels.csv")


def test_categorical_metrics_on_known_inputs():
    label = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    pred = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [0.5, 0.4, 0.1]])
    m = categorical_metrics(pred, label, ["a", "b", "neutral"])
    assert m["accuracy"] == pytest.approx(1 / 3)  # row 2's label argmax is b (first max)
    assert m["top2"] == pytest.approx(2 / 3)
    kl = [math.log(1 / 0.7), 0.5 * math.log(0.5 / 0.35) + 0.5 * math.log(0.5 / 0.25), math.log(10)]
    assert m["kl"] == pytest.approx(np.mean(kl))
    assert m["confusion"] == [[1, 0, 0], [1, 0, 0], [1, 0, 0]]
    assert m["accuracy_without_neutral"] == pytest.approx(1 / 2)  # b row: a 0.4 beats b 0.35


def test_class_balanced_metrics_on_known_inputs(tmp_path):
    names = ["a", "b", "neutral", "never"]
    truth = np.array([0, 0, 0, 0, 1, 2, 2])
    guess = np.array([0, 0, 0, 1, 2, 2, 0])
    pred = np.full((7, 4), 0.01)
    pred[np.arange(7), guess] = 0.9
    pred[4, 1] = 0.5  # b's row: neutral 0.9 > b 0.5, but b wins without neutral
    m = class_metrics(pred, truth, names)
    assert m["accuracy"] == pytest.approx(4 / 7)
    per = m["per_class"]
    assert per["a"] == pytest.approx({"support": 4, "recall": 0.75, "precision": 0.75, "f1": 0.75})
    assert per["b"]["recall"] == 0 and per["b"]["precision"] == 0 and per["b"]["f1"] == 0
    assert per["neutral"]["recall"] == 0.5 and per["neutral"]["precision"] == 0.5
    assert math.isnan(per["never"]["recall"]) and per["never"]["support"] == 0
    assert m["balanced_accuracy"] == pytest.approx((0.75 + 0 + 0.5) / 3)  # "never" left out
    assert m["macro_f1"] == pytest.approx((0.75 + 0 + 0.5) / 3)
    assert m["confusion"][0] == [3, 1, 0, 0] and m["confusion"][2] == [1, 0, 1, 0]
    assert m["balanced_accuracy_without_neutral"] == pytest.approx((0.75 + 1.0) / 2)
    # a classifier that always answers the majority class: accuracy high, balanced low
    majority = class_metrics(np.tile([0.9, 0.05, 0.05, 0.0], (7, 1)), truth, names)
    assert majority["accuracy"] == pytest.approx(4 / 7)
    assert majority["balanced_accuracy"] == pytest.approx(1 / 3)
    written = save_class_report({"n": 7, "category": m}, tmp_path / "r" / "classes_x")
    assert [p.name for p in written] == ["classes_x.csv", "classes_x.json"]
    rows = (tmp_path / "r" / "classes_x.csv").read_text().splitlines()
    assert rows[0].startswith("view,class,support,recall")
    assert rows[1].startswith("category,a,4,0.75")
    assert rows[-1].startswith("category,all,7,,,,0.571429,0.416667")


def test_regression_metrics_on_known_inputs():
    target = np.array([1.0, 2.0, 3.0, 4.0])
    perfect = regression_metrics(target, target)
    assert perfect["mse"] == 0 and perfect["pearson_r"] == pytest.approx(1)
    assert perfect["ccc"] == pytest.approx(1)
    shifted = regression_metrics(target + 1, target)
    assert shifted["mse"] == 1 and shifted["mae"] == 1 and shifted["pearson_r"] == pytest.approx(1)
    assert shifted["ccc"] == pytest.approx(2 * 1.25 / (1.25 + 1.25 + 1))
    assert math.isnan(regression_metrics(np.ones(4), target)["pearson_r"])


def test_views_and_feature_cache(tmp_path, warm_cool):
    image = np.arange(10 * 20 * 3, dtype=np.uint8).reshape(10, 20, 3)
    assert np.array_equal(view_image(image, "flip")[:, 0], image[:, -1])
    assert view_image(image, "crop-br").shape == (8, 16, 3)
    assert np.array_equal(view_image(image, "crop-tl"), image[:8, :16])
    assert set(VIEWS) >= {"full", "flip", "crop-c"}
    torch.manual_seed(0)
    m = build_model("mobilenet_v3_small", ["va"])
    paths = [warm_cool.path(i) for i in range(4)]
    first = extract_features(m, paths, size=32, cache_dir=tmp_path / "c")
    assert len(list((tmp_path / "c").glob("*.npz"))) == 1
    with torch.no_grad():
        direct = m.backbone(
            m.preprocess(torch.from_numpy(np.array(Image.open(paths[1])))[None], 32)
        )
    assert np.allclose(first[1], direct.numpy()[0], atol=1e-5)
    again = extract_features(m, paths[::-1], size=32, cache_dir=tmp_path / "c")
    assert np.array_equal(again, first[::-1])


def test_train_saves_split_metrics_and_evaluates_same_test_rows(tmp_path, warm_cool):
    # real ImageNet features (offline, from the PyPI package) tell red from blue reliably
    config = tiny_config(tmp_path, backbone="efficientnet_lite0", weights="imagenet")
    model = train([warm_cool], config, specs=["csv:labels.csv"])
    meta = model.metadata
    split = meta["split"]["datasets"]["labels"]
    assert len(split["test"]) == 4 and len(split["val"]) == 4 and split["n_train"] == 8
    assert meta["data"]["specs"] == ["csv:labels.csv"] and meta["seed"] == 0
    test = meta["metrics"]["test"]["labels"]
    assert test["n"] == 4 and test["categorical"]["accuracy"] >= 0.75
    assert test["valence"]["mse"] < 4.0  # predicting the 5.0 midpoint would give 4.0
    path = save_model(model, tmp_path / "m.pt")
    loaded = load_model(path)
    assert loaded.input_size == 32  # trained at 32 px: that is its input size from now on
    rows = held_out_rows(loaded, warm_cool)
    assert [warm_cool.items[i] for i in rows] == split["test"]
    again = evaluate_rows(loaded, warm_cool, rows, cache_dir=str(tmp_path / "cache"))
    assert again["categorical"]["accuracy"] == test["categorical"]["accuracy"]
    assert again["va_mse"] == pytest.approx(test["va_mse"], rel=1e-5)


def test_training_is_deterministic_and_checks_targets(tmp_path, warm_cool):
    a = train([warm_cool], tiny_config(tmp_path, epochs=5, extra_sizes=[24]))
    b = train([warm_cool], tiny_config(tmp_path, epochs=5, extra_sizes=[24]))
    assert a.identity == b.identity
    assert a.metadata["metrics"]["test@24px"]["labels"]["n"] == 4  # also scored at 24 px
    with pytest.raises(ConfigError, match="head 'vad' has no training data for dominance"):
        no_d = warm_cool.subset(range(len(warm_cool)))
        no_d.values["dominance"][:] = np.nan
        train([no_d], tiny_config(tmp_path, heads=["vad"]))
    with pytest.raises(ConfigError, match="views"):
        train([warm_cool], tiny_config(tmp_path, views=["sideways"]))


def test_category_labels_and_balance_train_and_are_recorded(tmp_path, warm_cool):
    model = train([warm_cool], tiny_config(tmp_path, labels="category", balance="weights"))
    assert model.metadata["train_config"]["labels"] == "category"
    assert model.metadata["train_config"]["balance"] == "weights"
    assert model.metadata["metrics"]["test"]["labels"]["categorical"]["accuracy"] >= 0.75
    soft_only = warm_cool.subset(range(len(warm_cool)))
    soft_only.categories = None
    with pytest.raises(ConfigError, match="dataset labels has classes"):
        train([soft_only], tiny_config(tmp_path, labels="mixed"))


def test_retraining_one_head_from_a_model_keeps_the_rest(tmp_path, warm_cool):
    base = train([warm_cool], tiny_config(tmp_path, epochs=4))
    path = save_model(base, tmp_path / "base.pt")
    config = tiny_config(tmp_path, epochs=4, heads=["categorical"], init=str(path))
    model = train([warm_cool], replace(config, labels="category", balance="prior"))
    assert [h.name for h in model.head_specs] == ["categorical", "va"]
    assert torch.equal(model.feature_mean, base.feature_mean)
    for key, value in base.heads["va"].state_dict().items():
        assert torch.equal(model.heads["va"].state_dict()[key], value)
    assert not torch.equal(
        model.heads["categorical"].members[0][-1].weight,
        base.heads["categorical"].members[0][-1].weight,
    )
    assert model.metadata["split"] == base.metadata["split"]
    assert model.metadata["base_model"]["source"] == str(path)
    test = model.metadata["metrics"]["test"]["labels"]
    assert test["va_mse"] == pytest.approx(base.metadata["metrics"]["test"]["labels"]["va_mse"])
    with pytest.raises(ConfigError, match="its split .seed 0.* differs from `seed` 3"):
        train([warm_cool], replace(config, seed=3))


def test_cross_validation_folds_cover_train_and_val_only(tmp_path, warm_cool):
    config = tiny_config(tmp_path, epochs=3, patience=3)
    rounds = fold_parts([warm_cool], config, 3)
    split = split_indices(warm_cool, config.seed, config.fractions)
    tested = np.concatenate([r["labels"]["test"] for r in rounds])
    assert sorted(tested) == sorted(np.concatenate([split["train"], split["val"]]))
    assert not set(tested) & set(split["test"])
    for r in rounds:
        parts = r["labels"]
        assert not set(parts["train"]) & (set(parts["val"]) | set(parts["test"]))
        assert not set(parts["val"]) & set(parts["test"])
    result = cross_validate([warm_cool], config, folds=3)
    assert len(result["folds"]) == 3 and result["n_folds"] == 3
    mean = result["mean"]["test"]["labels"]
    per_fold = [f["test"]["labels"]["categorical"]["accuracy"] for f in result["folds"]]
    assert mean["accuracy"] == pytest.approx(np.mean(per_fold))
    assert "category_balanced_accuracy" in mean and "va_mse" in mean
    with pytest.raises(ConfigError, match="at least 3 folds"):
        fold_parts([warm_cool], config, 2)


def test_ensemble_members_train_independently(tmp_path, warm_cool):
    model = train([warm_cool], tiny_config(tmp_path, hidden=4, members=2, epochs=10))
    assert [h["members"] for h in model.metadata["heads"]] == [2, 2]
    assert model.metadata["train_config"]["members"] == 2
    first, second = model.heads["va"].members
    assert not torch.allclose(first[-1].weight, second[-1].weight)
    test = model.metadata["metrics"]["test"]["labels"]
    assert test["valence"]["mse"] < 4.0  # better than always predicting the 5.0 midpoint
    with pytest.raises(ConfigError, match="members must be >= 1"):
        train([warm_cool], tiny_config(tmp_path, members=0))


def test_heads_learn_from_partially_labelled_rows(tmp_path, warm_cool):
    half = warm_cool.subset(range(len(warm_cool)))
    half.values["dominance"][::2] = np.nan  # a target missing on some rows must not poison
    half.probs[1::4] = np.nan  # the gradient of the rows that have it
    model = train([half], tiny_config(tmp_path, heads=["categorical", "vad"], epochs=10))
    assert all(torch.isfinite(p).all() for p in model.heads.parameters())
    assert model.metadata["history"]["vad"]["val_loss"] < float("inf")


def test_refit_retrains_on_train_and_validation_rows(tmp_path, warm_cool):
    config = tiny_config(tmp_path, epochs=8, patience=8)
    plain = train([warm_cool], config)
    refit = train([warm_cool], tiny_config(tmp_path, epochs=8, patience=8, refit=True))
    assert refit.metadata["history"] == plain.metadata["history"]  # same early stopping
    assert "val" in plain.metadata["metrics"] and "val" not in refit.metadata["metrics"]
    assert not torch.equal(refit.feature_mean, plain.feature_mean)
    # the refitted standardisation is that of the training + validation images' features
    parts = split_indices(warm_cool, config.seed, config.fractions)
    rows = np.sort(np.concatenate([parts["train"], parts["val"]]))
    paths = [warm_cool.path(i) for i in rows]
    feats = np.concatenate(
        [extract_features(refit, paths, v, 32, cache_dir=tmp_path / "cache") for v in config.views]
    )
    assert torch.allclose(refit.feature_mean, torch.from_numpy(feats.mean(axis=0)), atol=1e-4)


def test_refitting_keeps_each_head_at_its_epoch_count(tmp_path):
    model = build_model("mobilenet_v3_small", ["categorical", "va"], ["a", "b"])
    rng = np.random.default_rng(0)
    n, dim = 32, model.embedding_dim
    probs = rng.dirichlet([1.0, 1.0], n)
    values = np.column_stack([rng.uniform(1, 9, (n, 2)), np.full(n, np.nan)])
    rows = Rows(rng.normal(size=(n, dim)).astype(np.float32), probs, values)
    config = tiny_config(tmp_path)

    def heads_after(stop_at):
        fit_heads(model, rows, None, config=config, stop_at=stop_at)
        return {k: v.clone() for k, v in model.heads.state_dict().items()}

    short, long = heads_after({"categorical": 2, "va": 2}), heads_after({"categorical": 2, "va": 5})
    assert all(torch.equal(short[k], long[k]) for k in short if k.startswith("categorical"))
    assert not all(torch.equal(short[k], long[k]) for k in short if k.startswith("va"))
    with pytest.raises(ConfigError, match="validation rows or an epoch count"):
        fit_heads(model, rows, None, config=config)


def test_finetune_changes_backbone_and_is_saved_with_it(tmp_path, warm_cool):
    model = train([warm_cool], tiny_config(tmp_path, finetune=True, finetune_epochs=1, epochs=2))
    assert model.metadata["finetuned"] is True
    path = save_model(model, tmp_path / "ft.pt")
    assert torch.load(path, weights_only=True)["backbone_included"]
    x = model.preprocess(torch.rand(2, 3, 32, 32), 32)
    with torch.no_grad():
        assert torch.allclose(model(x)["probs"], load_model(path)(x)["probs"], atol=1e-5)


def test_compare_representations_table(tmp_path, warm_cool):
    table = compare_representations([warm_cool], tiny_config(tmp_path, epochs=10))
    reps = {row["representation"]: row for row in table}
    assert list(reps) == ["categorical", "va", "vad"]
    assert reps["categorical"]["mapped"] == ["valence", "arousal", "dominance"]
    assert reps["va"]["mapped"] == ["probs", "dominance"]
    assert reps["vad"]["mapped"] == ["probs"]
    for row in table:
        assert 0 <= row["accuracy"] <= 1 and row["valence_mse"] >= 0
