"""Scorer and Outputs: batching, crops, ensembles, devices, precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evoemotion.emotion import build_model
from evoemotion.errors import ConfigError
from evoemotion.genotypes import load_genotype
from evoemotion.objectives import aesthetic
from evoemotion.pipeline import Evaluator
from evoemotion.render import render
from evoemotion.scoring import CROP_VIEWS, Outputs, Scorer, crop_box, resolve_device

CLASSES = ["anger", "fear", "joy"]


def tiny_model(seed: int, classes: list[str] = CLASSES):
    torch.manual_seed(seed)
    return build_model("mobilenet_v3_small", ["categorical", "vad"], classes, weights="none")


@pytest.fixture(scope="module")
def model():
    return tiny_model(0)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (5, 40, 40, 3), dtype=np.uint8)


def direct(model, images: np.ndarray, size: int) -> dict[str, np.ndarray]:
    with torch.inference_mode():
        out = model(model.preprocess(torch.from_numpy(images), size))
    return {k: v.double().numpy() for k, v in out.items()}


def test_outputs_names_take_and_concatenate():
    out = Outputs({"a": np.arange(4.0), "probs": np.ones((4, 2))})
    assert len(out) == 4 and out.names == ["a", "probs"] and out.scalar_names == ["a"]
    part = out.take(np.array([3, 1]))
    assert part["a"].tolist() == [3.0, 1.0]
    joined = Outputs.concatenate([part, out.take(np.array([0]))])
    assert joined["a"].tolist() == [3.0, 1.0, 0.0]
    assert out.table(["a", "a"]).shape == (4, 2)
    with pytest.raises(ValueError, match="same length"):
        Outputs({"a": np.zeros(2), "b": np.zeros(3)})
    with pytest.raises(KeyError, match="available"):
        out["valence"]


def test_scorer_matches_the_model_and_names_every_output(model, images):
    out = Scorer([model], device="cpu", size=32).score(images)
    ref = direct(model, images, 32)
    assert out.names == [*CLASSES, "probs", "valence", "arousal", "dominance", "embedding"]
    np.testing.assert_allclose(out["probs"], ref["probs"], atol=1e-5)
    np.testing.assert_allclose(out["joy"], ref["probs"][:, 2], atol=1e-5)
    np.testing.assert_allclose(out["valence"], ref["valence"], atol=1e-4)
    assert out["embedding"].shape == (5, model.embedding_dim)
    np.testing.assert_allclose(out["probs"].sum(axis=1), 1.0, atol=1e-5)


def test_results_do_not_depend_on_the_batch_size(model, images):
    small = Scorer([model], device="cpu", size=32, batch_size=2).score(images)
    large = Scorer([model], device="cpu", size=32, batch_size=64).score(images)
    np.testing.assert_allclose(small["probs"], large["probs"], atol=1e-5)
    np.testing.assert_allclose(small["embedding"], large["embedding"], atol=1e-4)


def test_two_crops_average_the_image_and_its_mirror(model, images):
    out = Scorer([model], device="cpu", size=32, crops=2).score(images)
    plain = direct(model, images, 32)
    mirror = direct(model, np.ascontiguousarray(images[:, :, ::-1]), 32)
    np.testing.assert_allclose(out["probs"], (plain["probs"] + mirror["probs"]) / 2, atol=1e-5)
    np.testing.assert_allclose(out["arousal"], (plain["arousal"] + mirror["arousal"]) / 2,
                               atol=1e-4)


def test_crop_boxes_stay_inside_the_image():
    for anchor, _ in CROP_VIEWS:
        top, left, h, w = crop_box(anchor, 40, 30)
        assert 0 <= top and 0 <= left and top + h <= 40 and left + w <= 30
    assert crop_box("full", 40, 30) == (0, 0, 40, 30)
    assert crop_box("br", 40, 40) == (5, 5, 35, 35)


def test_ensemble_averages_models_and_records_disagreement(model, images):
    other = tiny_model(1)
    out = Scorer([model, other], device="cpu", size=32).score(images)
    a, b = direct(model, images, 32), direct(other, images, 32)
    np.testing.assert_allclose(out["probs"], (a["probs"] + b["probs"]) / 2, atol=1e-5)
    assert out["embedding"].shape == (5, model.embedding_dim + other.embedding_dim)
    assert (out["disagreement"] > 0).all()
    same = Scorer([model, model], device="cpu", size=32).score(images)
    np.testing.assert_allclose(same["disagreement"], 0.0, atol=1e-6)


def test_bf16_on_cpu_stays_close_to_fp32(model, images):
    fp32 = Scorer([model], device="cpu", size=32, precision="fp32").score(images)
    bf16 = Scorer([model], device="cpu", size=32, precision="bf16").score(images)
    np.testing.assert_allclose(bf16["probs"], fp32["probs"], atol=0.05)


def test_scorer_rejects_bad_configurations(model, images):
    with pytest.raises(ConfigError, match="same outputs"):
        Scorer([model, tiny_model(2, ["calm", "joy", "fear"])], device="cpu")
    with pytest.raises(ConfigError, match="crops"):
        Scorer([model], device="cpu", crops=11)
    with pytest.raises(ConfigError, match="at least one"):
        Scorer([], device="cpu")
    with pytest.raises(ConfigError, match="uint8"):
        Scorer([model], device="cpu").score(images.astype(np.float32))


def test_device_names_resolve_or_fail_with_the_name():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="'tpu'"):
        resolve_device("tpu")
    with pytest.raises(ConfigError, match="not available"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_evaluator_overlaps_chunks_but_matches_render_then_score(model):
    genotype = load_genotype("cppn")
    genomes = np.stack(genotype.random(np.random.default_rng(1), 7))
    scorer = Scorer([model], device="cpu", size=32, batch_size=3)
    evaluator = Evaluator(genotype, scorer, render_size=24, features={"aesthetic": aesthetic})
    out = evaluator.evaluate(genomes, keep_images=True)
    evaluator.close()
    images = render(genotype, genomes, 24)
    np.testing.assert_array_equal(out.images, images)
    np.testing.assert_allclose(out["probs"], scorer.score(images)["probs"], atol=1e-6)
    np.testing.assert_array_equal(out["aesthetic"], aesthetic(images))
    assert len(out) == 7
