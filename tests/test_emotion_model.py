"""EmotionModel: backbones, heads, preprocessing, checkpoints, bundled default."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from evoemotion.emotion import build_model, load_model, save_model
from evoemotion.emotion.backbones import build_backbone
from evoemotion.emotion.model import DEFAULT_CHECKPOINT, head_specs
from evoemotion.errors import CheckpointError, ConfigError

CLASSES = ["calm", "joy", "fear"]


@pytest.fixture(scope="module")
def small_model():
    """A random-weight MobileNetV3-small with categorical + VAD heads."""
    torch.manual_seed(0)
    return build_model("mobilenet_v3_small", ["categorical", "vad"], CLASSES, hidden=8)


def _images(n=2, h=40, w=56, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8))


def test_outputs_have_contract_names_shapes_and_ranges(small_model):
    m = small_model
    assert m.class_names == CLASSES
    assert m.regression_names == ["valence", "arousal", "dominance"]
    assert m.output_names == CLASSES + ["valence", "arousal", "dominance"]
    assert m.scales["valence"] == (1.0, 9.0) and m.scales["joy"] == (0.0, 1.0)
    with torch.no_grad():
        out = m(m.preprocess(_images(3), 48))
    assert out["logits"].shape == out["probs"].shape == (3, 3)
    assert torch.allclose(out["probs"].sum(dim=1), torch.ones(3))
    assert out["embedding"].shape == (3, m.embedding_dim)
    for name in m.regression_names:
        assert out[name].shape == (3,)
        assert ((out[name] >= 1.0) & (out[name] <= 9.0)).all()


def test_preprocess_uint8_equals_float_and_resizes_on_request(small_model):
    images = _images(2, 50, 30)
    from_uint8 = small_model.preprocess(images, 32)
    as_float = images.permute(0, 3, 1, 2).float() / 255.0
    assert from_uint8.shape == (2, 3, 32, 32)
    assert torch.allclose(from_uint8, small_model.preprocess(as_float, 32), atol=1e-6)
    assert small_model.preprocess(images).shape[-1] == small_model.input_size
    # a same-size input is only normalised: mean/std of ImageNet undo exactly
    same = small_model.preprocess(as_float[:, :, :30, :30], 30)
    mean = torch.tensor(small_model.info.mean).view(1, 3, 1, 1)
    std = torch.tensor(small_model.info.std).view(1, 3, 1, 1)
    assert torch.allclose(same * std + mean, as_float[:, :, :30, :30], atol=1e-6)


def test_preprocess_is_differentiable_for_float_input(small_model):
    x = torch.rand(1, 3, 70, 70, requires_grad=True)
    out = small_model(small_model.preprocess(x, 32))
    (out["valence"].sum() + out["probs"][:, 1].sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_preprocess_rejects_bad_shapes(small_model):
    with pytest.raises(ConfigError, match="uint8 images"):
        small_model.preprocess(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ConfigError, match="float"):
        small_model.preprocess(torch.zeros(2, 8, 8, 3))


def test_head_specs_validate_names_and_overlaps():
    specs = head_specs(["categorical", "va", "dominance"], CLASSES)
    assert [s.outputs for s in specs] == [tuple(CLASSES), ("valence", "arousal"), ("dominance",)]
    with pytest.raises(ConfigError, match="unknown head 'mood'"):
        head_specs(["mood"])
    with pytest.raises(ConfigError, match="class names"):
        head_specs(["categorical"])
    with pytest.raises(ConfigError, match="repeats outputs"):
        head_specs(["va", "valence"])


def test_save_load_roundtrip_keeps_outputs_metadata_and_identity(small_model, tmp_path):
    path = save_model(small_model, tmp_path / "sub" / "m.pt", data={"specs": ["x"]}, seed=3)
    loaded = load_model(path)
    assert not loaded.training
    assert loaded.identity == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.metadata["seed"] == 3 and loaded.metadata["data"] == {"specs": ["x"]}
    assert loaded.output_names == small_model.output_names
    x = small_model.preprocess(_images(2), 40)
    with torch.no_grad():
        a, b = small_model(x), loaded(x)
    for key in ("probs", "valence", "dominance", "embedding"):
        assert torch.allclose(a[key], b[key], atol=1e-6)
    assert not list(tmp_path.joinpath("sub").glob(".*"))  # no temp file left behind


def test_ensemble_heads_average_independent_members(tmp_path):
    torch.manual_seed(0)
    model = build_model("mobilenet_v3_small", ["categorical", "va"], CLASSES, hidden=8, members=3)
    assert model.members == 3 and all(len(h.members) == 3 for h in model.heads.values())
    x = model.preprocess(_images(4), 32)
    with torch.no_grad():
        embedding = model.backbone(x)
        each = [model.predict_from_embedding(embedding, k) for k in range(3)]
        mean = model(x)
    assert not torch.allclose(each[0]["logits"], each[1]["logits"])  # own initialisation
    for key in ("logits", "valence", "arousal"):
        assert torch.allclose(mean[key], torch.stack([e[key] for e in each]).mean(0), atol=1e-6)
    assert torch.allclose(mean["probs"], torch.softmax(mean["logits"], dim=1))
    loaded = load_model(save_model(model, tmp_path / "ens.pt"))
    assert [s.members for s in loaded.head_specs] == [3, 3]
    with torch.no_grad():
        assert torch.allclose(loaded(x)["valence"], mean["valence"], atol=1e-6)
    with pytest.raises(ConfigError, match="members=0"):
        head_specs(["va"], members=0)


def test_format_1_checkpoint_with_single_net_heads_still_loads(small_model, tmp_path):
    path = save_model(small_model, tmp_path / "new.pt")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["format_version"] = 1  # how evoemotion wrote heads before ensembles
    checkpoint["state_dict"] = {
        k.replace(".members.0.", ".net."): v for k, v in checkpoint["state_dict"].items()
    }
    for head in checkpoint["heads"]:
        del head["members"]
    assert any(".net." in k for k in checkpoint["state_dict"])
    torch.save(checkpoint, tmp_path / "old.pt")
    old = load_model(tmp_path / "old.pt")
    assert [s.members for s in old.head_specs] == [1, 1]
    x = small_model.preprocess(_images(2), 40)
    with torch.no_grad():
        assert torch.allclose(old(x)["probs"], small_model(x)["probs"], atol=1e-6)


def test_imagenet_lite_checkpoint_holds_heads_only(tmp_path):
    model = build_model("efficientnet_lite0", ["va"], weights="imagenet")
    path = save_model(model, tmp_path / "lite.pt")
    assert path.stat().st_size < 500_000  # the 17 MB backbone comes from the PyPI package
    loaded = load_model(path)
    x = model.preprocess(_images(1, 64, 64), 64)
    with torch.no_grad():
        assert torch.allclose(model(x)["valence"], loaded(x)["valence"], atol=1e-5)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"not a checkpoint at all", "not a readable model checkpoint"),
        (None, "not an evoemotion emotion-model checkpoint"),
    ],
)
def test_bad_checkpoints_give_one_line_errors(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    if content is None:
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as info:
        load_model(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_truncated_and_missing_checkpoints(small_model, tmp_path):
    path = save_model(small_model, tmp_path / "m.pt")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="nowhere.pt not found"):
        load_model(tmp_path / "nowhere.pt")


def test_backbone_names_and_weight_errors(tmp_path, monkeypatch):
    _, info = build_backbone("inception_v3")
    assert (info.input_size, info.feature_dim) == (299, 2048)
    with pytest.raises(ConfigError, match="unknown backbone 'resnet999'"):
        build_backbone("resnet999")
    with pytest.raises(CheckpointError, match="w.pt not found"):
        build_backbone("mobilenet_v3_small", tmp_path / "w.pt")
    lite, _ = build_backbone("efficientnet-lite0")
    torch.save(lite.net.state_dict(), tmp_path / "lite.pt")
    with pytest.raises(CheckpointError, match="do not fit the backbone"):
        build_backbone("mobilenet_v3_small", tmp_path / "lite.pt")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("EVOEMOTION_OFFLINE", "1")
    with pytest.raises(CheckpointError, match=str(tmp_path / "torch")):
        build_backbone("mobilenet_v3_small", "imagenet")


def test_multiscale_lite_appends_pooled_stage_statistics():
    plain, info = build_backbone("efficientnet_lite0", "imagenet")
    multi, info_ms = build_backbone("efficientnet_lite0_ms", "imagenet")
    assert info_ms.feature_dim == info.feature_dim + 2 * (40 + 112 + 320)
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        a, b = plain(x), multi(x)
    assert torch.allclose(b[:, : info.feature_dim], a, atol=1e-5)
    assert torch.isfinite(b).all() and (b[:, info.feature_dim :] != 0).any()


def test_local_weight_file_is_loaded(tmp_path):
    torch.manual_seed(1)
    source, _ = build_backbone("mobilenet_v3_small")
    torch.save({"state_dict": source.net.state_dict()}, tmp_path / "w.pt")
    loaded, info = build_backbone("mobilenet_v3_small", tmp_path / "w.pt")
    assert info.weights == str(tmp_path / "w.pt")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(source(x), loaded(x))


def test_bundled_default_loads_offline_and_scores_a_batch():
    assert DEFAULT_CHECKPOINT.is_file()
    model = load_model("default")
    assert model.info.name == "efficientnet_lite0_ms" and model.info.weights == "imagenet"
    assert len(model.class_names) == 7 and "neutral" in model.class_names
    assert model.regression_names == ["valence", "arousal", "dominance"]
    images = _images(4, 64, 64, seed=5)
    with torch.no_grad():
        out = model(model.preprocess(images, 64))
    assert torch.allclose(out["probs"].sum(dim=1), torch.ones(4), atol=1e-5)
    for name in model.regression_names:
        assert ((out[name] > 1.0) & (out[name] < 9.0)).all()
    assert model.metadata["metrics"]["test"]["emotion6"]["categorical"]["n"] > 300
    config = model.metadata["train_config"]
    assert config["labels"] == "mixed" and config["mix"] > 0.5  # mostly the categories
    category = model.metadata["metrics"]["test"]["emotion6"]["category"]
    recalls = {name: row["recall"] for name, row in category["per_class"].items()}
    assert set(recalls) == set(model.class_names) and min(recalls.values()) >= 0.25


def test_bundled_raters_model_shares_everything_but_the_categorical_head():
    default, raters = load_model("default"), load_model("raters")
    assert raters.class_names == default.class_names and raters.identity != default.identity
    assert raters.metadata["train_config"].get("labels", "soft") == "soft"
    assert torch.equal(raters.feature_mean, default.feature_mean)
    for name in ("va", "dominance"):
        for key, value in raters.heads[name].state_dict().items():
            assert torch.equal(default.heads[name].state_dict()[key], value)
    split = default.metadata["split"]["datasets"]
    assert split == raters.metadata["split"]["datasets"]  # the same held-out test images
