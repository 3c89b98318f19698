"""The CUDA paths: scorer precision, Evaluator, MAP-Elites + resume, cgen, fine-tuning.

Every test here is marked ``cuda`` and skips without a GPU, so CI (no GPU) collects and
skips them. ``EVOEMOTION_CUDA_TESTS_ON_CPU=1`` runs them on the CPU instead, small and in
float32 (CPU bfloat16 autocast of the EfficientNet-Lite backbone is slower than float32 on
the 2-core development machine), which is how ``benchmarks/gpu/check.sh --cpu`` tests this
file on a machine without a GPU. ``pytest -m cuda`` selects them.

Stated tolerance of bfloat16 scoring (CUDA's default precision: autocast + channels-last)
against CPU float32, on random CPPN images scored by the bundled classifier at 224 px:
class probabilities within :data:`PROB_ATOL` (mean difference within a tenth of that),
valence/arousal/dominance within :data:`VALUE_ATOL` on their 1-9 scale.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from evoemotion.cli import main
from evoemotion.emotion import build_model, load_model, save_model
from evoemotion.experiment import RunConfig, resume_run, start_run
from evoemotion.genotypes import load_genotype
from evoemotion.pipeline import Evaluator
from evoemotion.render import render
from evoemotion.runs import run_iterations
from evoemotion.scoring import Scorer

#: Largest absolute class-probability difference of bf16 scoring from CPU float32.
PROB_ATOL = 0.06
#: Largest absolute valence/arousal/dominance difference (1-9 scale) from CPU float32.
VALUE_ATOL = 0.3


def _device() -> str | None:
    if torch.cuda.is_available():
        return "cuda"
    return "cpu" if os.environ.get("EVOEMOTION_CUDA_TESTS_ON_CPU") == "1" else None


DEVICE = _device()
ON_GPU = DEVICE == "cuda"
#: CUDA's default scoring precision (``auto``) is bf16; the CPU stand-in scores in float32.
PRECISION = "auto" if ON_GPU else "fp32"
#: Scoring side and image count: the stated tolerance is for 224 px; the CPU stand-in is small.
SCORE_SIZE, IMAGES = (224, 48) if ON_GPU else (64, 8)

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        DEVICE is None, reason="needs a CUDA GPU (EVOEMOTION_CUDA_TESTS_ON_CPU=1: run on CPU)"
    ),
]


@pytest.fixture(scope="module")
def cppn_images():
    genotype = load_genotype("cppn")
    genomes = np.stack(genotype.random(np.random.default_rng(0), IMAGES))
    return genotype, genomes, render(genotype, genomes, 64)


@pytest.fixture(scope="module")
def default_model():
    return load_model("default")


def _assert_close_to_fp32(out, exact) -> None:
    probs = np.abs(out["probs"] - exact["probs"])
    assert probs.max() <= PROB_ATOL and probs.mean() <= PROB_ATOL / 10, probs.max()
    for name in ("valence", "arousal", "dominance"):
        assert np.abs(out[name] - exact[name]).max() <= VALUE_ATOL, name


def test_scorer_on_the_device_agrees_with_cpu_float32(default_model, cppn_images):
    _, _, images = cppn_images
    exact = Scorer([load_model("default")], device="cpu", size=SCORE_SIZE,
                   precision="fp32").score(images)
    scorer = Scorer([default_model], device=DEVICE, size=SCORE_SIZE, precision=PRECISION,
                    batch_size=16)
    assert scorer.bf16 == ON_GPU and scorer.device.type == DEVICE
    if ON_GPU:
        assert scorer._channels_last
        weight = next(p for p in scorer.models[0].parameters() if p.ndim == 4)
        assert weight.is_cuda and weight.is_contiguous(memory_format=torch.channels_last)
    out = scorer.score(images)
    _assert_close_to_fp32(out, exact)
    assert out["embedding"].shape == exact["embedding"].shape
    assert np.isfinite(out["embedding"]).all()
    # Batching must not change a result beyond the precision: one image alone agrees.
    alone = scorer.score(images[:1])
    assert np.abs(alone["probs"][0] - out["probs"][0]).max() <= PROB_ATOL


def test_evaluator_end_to_end_on_the_device(default_model, cppn_images):
    genotype, genomes, images = cppn_images
    scorer = Scorer([default_model], device=DEVICE, size=SCORE_SIZE, precision=PRECISION,
                    batch_size=16)
    evaluator = Evaluator(genotype, scorer, render_size=64, chunk_size=16)
    try:
        out = evaluator.evaluate(genomes, keep_images=True)
    finally:
        evaluator.close()
    np.testing.assert_array_equal(out.images, images)
    assert len(out) == len(genomes)
    exact = Scorer([load_model("default")], device="cpu", size=SCORE_SIZE,
                   precision="fp32").score(images)
    _assert_close_to_fp32(out, exact)


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("mobilenet_v3_small", ["categorical", "vad"], ["anger", "fear", "joy"],
                        weights="none")
    return save_model(model, tmp_path_factory.mktemp("model") / "tiny.pt")


def _archive(state):
    data = state.archive.data()
    order = np.argsort(data["index"])
    return [data[key][order] for key in ("index", "objective", "measures", "solution")]


def test_map_elites_on_the_device_and_its_exact_resume(tiny_classifier, tmp_path):
    config = RunConfig(classifiers=[str(tiny_classifier)], iterations=4, batch_size=16,
                       chunk_size=8, render_size=32, score_size=64, cells=16, device=DEVICE,
                       precision=PRECISION, checkpoint_every=1, export_size=24, seed=5,
                       options={"emitters": 2, "emitter": "iso-line"})
    whole = start_run(config, tmp_path / "whole")
    assert whole.evaluator.scorer.device.type == DEVICE
    run_iterations(whole.folder, whole.state, whole.evaluator, iterations=4)
    parted = start_run(config, tmp_path / "parted")
    run_iterations(parted.folder, parted.state, parted.evaluator, iterations=2)
    parted.close()
    resumed = resume_run(tmp_path / "parted")
    assert resumed.state.iteration == 2
    assert resumed.evaluator.scorer.device.type == DEVICE
    run_iterations(resumed.folder, resumed.state, resumed.evaluator, iterations=4)
    whole.close()
    resumed.close()
    assert len(whole.state.archive) > 0
    for a, b in zip(_archive(whole.state), _archive(resumed.state), strict=True):
        np.testing.assert_array_equal(a, b)
    strip = [{k: v for k, v in m.items() if k != "wall_time"} for m in whole.state.metrics]
    assert strip == [{k: v for k, v in m.items() if k != "wall_time"}
                     for m in resumed.state.metrics]


def test_cgen_training_steps_on_the_device_match_the_cpu(tiny_classifier):
    from evoemotion.cgen import (
        Architecture,
        ConditionalGenerator,
        GeneratorTrainConfig,
        TargetSpace,
        Trainer,
        train,
    )

    losses = {}
    for device in ("cpu", DEVICE):
        classifier = load_model(tiny_classifier)
        generator = ConditionalGenerator(TargetSpace.from_model(classifier, "va"),
                                         Architecture(hidden=16, depth=3, embed_dim=16))
        config = GeneratorTrainConfig(train_size=32, classifier_size=64, batch_size=8, lr=1e-2)
        trainer = Trainer(generator, classifier, config, device=device)
        assert train(trainer, 12)
        assert all(p.device.type == device for p in trainer.generator.parameters())
        losses[device] = [m["loss"] for m in trainer.history]
    assert np.isfinite(losses[DEVICE]).all() and len(losses[DEVICE]) == 12
    # The first step sees the same latents and weights on both devices.
    assert losses[DEVICE][0] == pytest.approx(losses["cpu"][0], rel=1e-2)


def _finetune_dataset(root, tmp_path) -> str:
    """A 48-image dataset SPEC: real Emotion6 rows when present, else synthetic images."""
    truth = root / "emotion6" / "ground_truth.txt"
    if truth.is_file():
        subset = tmp_path / "emotion6"
        subset.mkdir()
        lines = truth.read_text().splitlines()
        (subset / "ground_truth.txt").write_text("\n".join(lines[:1] + lines[1::40][:48]) + "\n")
        (subset / "images").symlink_to(root / "emotion6" / "images")
        return f"emotion6:{subset}"
    rng = np.random.default_rng(0)
    rows = ["path,label,valence,arousal"]
    for i in range(48):
        warm = i % 2 == 0
        image = rng.integers(0, 60, (96, 96, 3))
        image[..., 0 if warm else 2] += 190
        Image.fromarray(image.astype(np.uint8)).save(tmp_path / f"{i}.jpg")
        rows.append(f"{i}.jpg,{'warm' if warm else 'cool'},{7 if warm else 3},{6 if warm else 2}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return f"csv:{tmp_path / 'labels.csv'}"


def test_train_finetune_one_epoch_on_the_device(tmp_path, capsys):
    from evoemotion.paths import data_root

    spec = _finetune_dataset(data_root(), tmp_path)
    out = tmp_path / "ft.pt"
    size = 128 if ON_GPU else 64
    assert main(["train", "--dataset", spec, "--head", "categorical,va", "--size", str(size),
                 "--epochs", "5", "--batch-size", "64", "--finetune", "--finetune-epochs", "1",
                 "--split", "0.6,0.2,0.2", "--device", DEVICE, "--no-cache", "--lexicon",
                 "none", "--out", str(out)]) == 0
    assert "categorical  accuracy" in capsys.readouterr().out
    model = load_model(out)
    assert model.metadata["finetuned"] is True
    start = build_model("efficientnet_lite0_ms", ["categorical", "va"], model.class_names,
                        weights="imagenet")
    changed = [not torch.equal(a, b) for a, b in zip(
        model.backbone.state_dict().values(), start.backbone.state_dict().values(), strict=True)
        if a.is_floating_point()]
    assert any(changed)
    x = torch.rand(4, 3, size, size)
    with torch.no_grad():
        on_cpu = model(model.preprocess(x, size))["probs"]
        device_model = model.to(DEVICE)
        on_device = device_model(device_model.preprocess(x.to(DEVICE), size))["probs"].cpu()
    torch.testing.assert_close(on_device, on_cpu, atol=5e-3, rtol=0)


@pytest.mark.parametrize("preset", ["cppn", "cppn-hsv"])
def test_torch_cppn_renderer_on_the_device_agrees_with_numba(preset):
    from evoemotion.render.differentiable import render_torch, to_uint8

    genotype = load_genotype(preset)
    genomes = np.stack(genotype.random(np.random.default_rng(1), IMAGES))
    expected = render(genotype, genomes, 64)
    weights = torch.tensor(genomes, dtype=torch.float32, device=DEVICE, requires_grad=True)
    images = render_torch(genotype, weights, 64)
    assert images.device.type == DEVICE and images.shape == (IMAGES, 3, 64, 64)
    levels = np.abs(to_uint8(images).astype(np.int16) - expected.astype(np.int16))
    assert levels.max() <= 1
    images.mean().backward()
    assert weights.grad.device.type == DEVICE and torch.isfinite(weights.grad).all()
    assert weights.grad[:, : genotype.n_weights].abs().sum() > 0
