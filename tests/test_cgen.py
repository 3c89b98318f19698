"""Conditional generator: targets, rendering, training through a classifier, checkpoints, CLI.

The classifier is a tiny ResNet-18 built with ``weights="none"`` whose heads are fitted for
a moment on synthetic colour fields labelled with simple image statistics (valence = mean
red, arousal = mean blue, class = the dominant channel), so the generator has a target it
can learn to hit at 32 px on the CPU.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evoemotion.archives import make_archive_spec
from evoemotion.cgen import (
    ACTIVATIONS,
    Architecture,
    ConditionalGenerator,
    GeneratorTrainConfig,
    Refinement,
    TargetSpace,
    Trainer,
    evaluate,
    grid_targets,
    load_generator,
    refine,
    resume_trainer,
    sample_grid,
    save_generator,
    train,
)
from evoemotion.cgen import network as network_module
from evoemotion.cgen.curriculum import TargetSampler
from evoemotion.cgen.training import SATURATION_BOUND, classify, fit_per_image
from evoemotion.cli import main
from evoemotion.emotion import build_model, save_model
from evoemotion.errors import CheckpointError, ConfigError
from evoemotion.scoring import Scorer

SIZE = 32
CLASSES = ["red", "green", "blue"]
SMALL = Architecture(hidden=16, depth=3, embed_dim=16)


def _colour_fields(n: int, seed: int) -> torch.Tensor:
    """Random flat colours overlaid with a random sinusoidal pattern, (n, 3, SIZE, SIZE)."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, SIZE), torch.linspace(-1, 1, SIZE),
                            indexing="ij")
    pattern = torch.sin(torch.randn((n, 1, 1, 1), generator=g) * 3 * xs
                        + torch.randn((n, 1, 1, 1), generator=g) * 3 * ys)
    base = torch.rand((n, 3, 1, 1), generator=g)
    return (base + 0.3 * torch.rand((n, 3, 1, 1), generator=g) * pattern).clamp(0, 1)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Run torch single-threaded here: these tensors are small, and on a shared 2-core
    machine a second thread per op costs more in synchronisation than it gains."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def classifier():
    """A ResNet-18 (random backbone) whose heads read mean red, mean blue, dominant channel."""
    torch.manual_seed(0)
    model = build_model("resnet18", ["categorical", "va"], class_names=CLASSES, weights="none")
    images = _colour_fields(512, seed=0)
    means = images.mean(dim=(2, 3))
    with torch.no_grad():
        features = model.backbone(model.preprocess(images, SIZE))
    model.feature_mean.copy_(features.mean(0))
    model.feature_scale.copy_(features.std(0) + 1e-6)
    optimiser = torch.optim.Adam(model.heads.parameters(), lr=1e-2)
    for _ in range(300):
        out = model.predict_from_embedding(features)
        loss = (F.mse_loss(out["valence"], 1 + 8 * means[:, 0])
                + F.mse_loss(out["arousal"], 1 + 8 * means[:, 2])
                + F.cross_entropy(out["logits"], means.argmax(1)))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


@pytest.fixture(scope="module")
def scorer(classifier):
    return Scorer([classifier], device="cpu", size=SIZE)


def _trainer(classifier, kind: str = "va", **options) -> Trainer:
    config = GeneratorTrainConfig(**{"train_size": SIZE, "classifier_size": SIZE, "lr": 1e-2,
                            **options})
    generator = ConditionalGenerator(TargetSpace.from_model(classifier, kind), SMALL)
    return Trainer(generator, classifier, config)


def _evaluate(generator, scorer):
    return evaluate(generator, scorer, cells=4, latents=2, size=SIZE).summary()


# --- target spaces --------------------------------------------------------------------------


def test_target_space_validates_targets(classifier):
    space = TargetSpace.from_model(classifier, "va")
    assert space.names == ("valence", "arousal") and space.scales == ((1.0, 9.0), (1.0, 9.0))
    np.testing.assert_array_equal(space.check([5, 2]), [[5.0, 2.0]])
    with pytest.raises(ConfigError, match=r"valence target 10 is outside .* 1\.\.9"):
        space.check([10, 5])
    with pytest.raises(ConfigError, match="arousal target 0"):
        space.parse("5,0")
    with pytest.raises(ConfigError, match="has 2 values"):
        space.check([5, 5, 5])
    with pytest.raises(ConfigError, match="comma-separated"):
        space.parse("high,low")
    with pytest.raises(ConfigError, match="outside"):
        space.check([[5, float("nan")]])
    categorical = TargetSpace.from_model(classifier, "categorical")
    np.testing.assert_array_equal(categorical.check(["blue", 0]), [2, 0])
    with pytest.raises(ConfigError, match="'joy' is not one of"):
        categorical.parse("joy")
    with pytest.raises(ConfigError, match="index in 0..2"):
        categorical.check(3)
    with pytest.raises(ConfigError, match="lacks dominance"):
        TargetSpace.from_model(classifier, "vad")
    with pytest.raises(ConfigError, match="not one of"):
        TargetSpace.from_model(classifier, "happy")


def test_encode_maps_scale_to_unit_interval_and_classes_to_one_hot(classifier):
    space = TargetSpace.from_model(classifier, "va")
    encoded = space.encode(torch.tensor([[1.0, 9.0], [5.0, 5.0]]))
    torch.testing.assert_close(encoded, torch.tensor([[-1.0, 1.0], [0.0, 0.0]]))
    one_hot = TargetSpace.from_model(classifier, "categorical").encode(torch.tensor([2, 0]))
    torch.testing.assert_close(one_hot, torch.tensor([[0.0, 0, 1], [1, 0, 0]]))


def test_target_sampler_aims_at_seen_cells_and_their_neighbours_unhit_first():
    space = TargetSpace("va", ("valence", "arousal"), ((1.0, 9.0), (1.0, 9.0)))
    sampler = TargetSampler(space, bins=8, explore=0.0)
    rng = torch.Generator().manual_seed(0)
    assert sampler.sample(4000, rng).min() < 1.5  # nothing seen yet: uniform over the scale
    # Images aimed at (2, 2) and (8, 8) both landed near (5, 5): only cell (4, 4) is seen.
    sampler.update(torch.tensor([[2.0, 2.0], [8.0, 8.0]]), torch.tensor([[5.2, 5.2]] * 2))
    targets = sampler.sample(4000, rng)
    assert targets.min() >= 4.0 and targets.max() <= 7.0  # cells 3..5 of 8 per axis
    cells = sampler.cell_of(targets)
    assert set(cells.tolist()) == {8 * i + j for i in (3, 4, 5) for j in (3, 4, 5)}
    # The centre cell is now hit by the images aimed at it: drawn less than its neighbours.
    for _ in range(2):  # running hit rate 0.75: weight 1 - 0.8 * 0.75 = 0.4 of a neighbour's
        sampler.update(torch.tensor([[5.5, 5.5]] * 4), torch.tensor([[5.4, 5.6]] * 4))
    counts = torch.bincount(sampler.cell_of(sampler.sample(9000, rng)), minlength=64)
    assert counts[8 * 4 + 4] < 0.6 * counts[8 * 4 + 5]
    assert 0 < sampler.reached() < 1
    # With explore = 1 the map is ignored; the state round-trips.
    assert TargetSampler(space, bins=8, explore=1.0).sample(4000, rng).min() < 1.5
    copy = TargetSampler(space, bins=8, explore=0.0)
    copy.load_state_dict(sampler.state_dict())
    torch.testing.assert_close(copy.weights(), sampler.weights())
    with pytest.raises(ValueError, match="64 cells, not 100"):
        TargetSampler(space, bins=10, explore=0.0).load_state_dict(sampler.state_dict())


def test_target_sampler_favours_classes_not_yet_reached():
    space = TargetSpace("categorical", ("a", "b", "c"), ((0.0, 1.0),) * 3)
    sampler = TargetSampler(space, bins=0, explore=0.0)
    sampler.update(torch.tensor([0, 0, 1]), torch.tensor([[0.9, 0.05, 0.05]] * 2
                                                         + [[0.5, 0.3, 0.2]]))
    counts = torch.bincount(sampler.sample(6000, torch.Generator().manual_seed(1)))
    assert counts[0] < counts[1] < counts[2]


# --- the network -----------------------------------------------------------------------------


def test_activations_are_the_genotype_activations():
    from evoemotion.render.ops import ACTIVATION_CODES
    from evoemotion.render.reference import apply_activation

    assert set(ACTIVATIONS) == set(ACTIVATION_CODES)
    x = np.linspace(-4, 4, 201, dtype=np.float32)
    for name, fn in ACTIVATIONS.items():
        reference = apply_activation(ACTIVATION_CODES[name], x.copy())
        np.testing.assert_allclose(fn(torch.from_numpy(x)).numpy(), reference, atol=1 / 255,
                                   err_msg=name)


def test_render_is_tiled_resolution_free_and_seeded(classifier, monkeypatch):
    space = TargetSpace.from_model(classifier, "va")
    generator = ConditionalGenerator(space, SMALL)
    z = generator.latents(3, seed=1)
    whole = generator.render([[2, 8], [5, 5], [8, 2]], z, (24, 40))
    assert whole.shape == (3, 24, 40, 3) and whole.dtype == np.uint8
    differentiable = generator(torch.tensor([[2.0, 8], [5, 5], [8, 2]]), z, (24, 40))
    np.testing.assert_array_equal(
        torch.round(differentiable * 255).byte().permute(0, 2, 3, 1).numpy(), whole)
    monkeypatch.setattr(network_module, "RENDER_CHUNK", 50)  # 2 rows of 40 px per band
    np.testing.assert_array_equal(generator.render([[2, 8], [5, 5], [8, 2]], z, (24, 40)), whole)
    # Resolution-free: the 3x finer render, sampled at the coarse pixel centres, matches.
    coarse = generator.render([5, 5], z[:1], 8)[0].astype(int)
    fine = generator.render([5, 5], z[:1], 24)[0, 1::3, 1::3].astype(int)
    assert np.abs(coarse - fine).max() <= 1
    again = ConditionalGenerator(space, SMALL).render([[2, 8], [5, 5], [8, 2]], z, (24, 40))
    np.testing.assert_array_equal(again, whole)
    other = ConditionalGenerator(space, Architecture(hidden=16, depth=3, embed_dim=16, seed=1))
    assert not np.array_equal(other.render([5, 5], z[:1], 16), whole[:1, :16, :16])
    with pytest.raises(ConfigError, match="2 targets for 3 latents"):
        generator.render([[2, 8], [5, 5]], z, 8)
    with pytest.raises(ConfigError, match="outside"):
        generator.render([[0, 8]], z, 8)


def test_condition_table_starts_neutral_and_interpolates_its_nodes(classifier):
    space = TargetSpace.from_model(classifier, "va")
    plain = ConditionalGenerator(space, SMALL)
    tabled = ConditionalGenerator(space, Architecture(hidden=16, depth=3, embed_dim=16,
                                                      condition_cells=3))
    z = plain.latents(2, seed=4)
    np.testing.assert_array_equal(tabled.render([[2, 8], [6, 3]], z, 16),
                                  plain.render([[2, 8], [6, 3]], z, 16))
    with torch.no_grad():  # node (valence i, arousal j) of the 3 x 3 table holds 3 i + j
        tabled.table.table[0, :] = torch.arange(9.0).reshape(3, 3)
    offsets = tabled.table(space.encode(torch.tensor([[1.0, 1.0], [9.0, 1.0], [5.0, 9.0],
                                                      [3.0, 5.0]])))[:, 0]
    torch.testing.assert_close(offsets, torch.tensor([0.0, 6.0, 5.0, 2.5]))
    assert not np.array_equal(tabled.render([[2, 8]], z[:1], 16), plain.render([[2, 8]], z[:1], 16))
    categorical = ConditionalGenerator(TargetSpace.from_model(classifier, "categorical"),
                                       Architecture(hidden=16, depth=3, condition_cells=3))
    assert categorical.table is None  # one-hot classes already select their own weights


def test_bad_architecture_and_training_options_are_config_errors():
    with pytest.raises(ConfigError, match="unknown CPPN activation"):
        Architecture(activations=("sin", "relu"))
    with pytest.raises(ConfigError, match="hidden=2"):
        Architecture(hidden=2)
    with pytest.raises(ConfigError, match="crop_min=0"):
        GeneratorTrainConfig(crop_min=0)
    with pytest.raises(ConfigError, match="unknown training option"):
        GeneratorTrainConfig.from_dict({"lr": 0.1, "momentum": 0.9})


# --- training --------------------------------------------------------------------------------


def test_va_training_lowers_the_loss_and_hits_targets_better(classifier, scorer):
    trainer = _trainer(classifier)
    before = _evaluate(trainer.generator, scorer)
    assert train(trainer, 100)
    fit = [m["fit"] for m in trainer.history]
    assert np.mean(fit[-40:]) < 0.7 * np.mean(fit[:20])
    after = _evaluate(trainer.generator, scorer)
    assert after["mae"] < 0.6 * before["mae"]
    assert after["reached"] > before["reached"]
    assert after["diversity_pixels"] > 0.02


def test_categorical_training_raises_the_target_probability(classifier, scorer):
    trainer = _trainer(classifier, "categorical", crops=2)
    before = _evaluate_categorical(trainer.generator, scorer)
    # 60 steps: at 30 the gain (0.15-0.27 over seeds 0-3) depended on the CPU's rounding
    train(trainer, 60)
    after = _evaluate_categorical(trainer.generator, scorer)
    assert after["target_prob"] > before["target_prob"] + 0.2
    assert after["reached"] >= before["reached"]


def _evaluate_categorical(generator, scorer):
    return evaluate(generator, scorer, latents=3, size=SIZE).summary()


def test_diversity_term_spreads_images_of_one_target(classifier):
    spread = {}
    for weight in (0.0, 0.2):
        trainer = _trainer(classifier, diversity_weight=weight)
        train(trainer, 20)
        spread[weight] = np.mean([m["diversity"] for m in trainer.history[-10:]])
    assert spread[0.2] > spread[0.0]


def test_saturation_penalty_pulls_colours_off_the_sigmoids_flat_ends(classifier):
    saturated = {}
    for weight in (0.0, 1.0):
        trainer = _trainer(classifier, saturation_weight=weight)
        with torch.no_grad():
            trainer.generator.net.out.bias.fill_(8.0)  # white everywhere: no gradient left
        train(trainer, 15)
        z = trainer.generator.latents(8, seed=5)
        targets = trainer.generator.space.as_tensor([[5.0, 5.0]] * 8)
        with torch.no_grad():
            logits = trainer.generator.logits(trainer.generator.embedding(targets, z), SIZE)
        saturated[weight] = float((logits.abs() > SATURATION_BOUND).float().mean())
        assert ("saturation" in trainer.history[-1]) == (weight > 0)
    assert saturated[0.0] > 0.5 and saturated[1.0] < 0.2 * saturated[0.0]


def _refinement(**options) -> Refinement:
    # one candidate: each image starts from its own latent, as the tests below follow it;
    # no twin rule (an untrained generator's images are alike): tested on its own
    return Refinement(**{"size": SIZE, "classifier_size": SIZE, "lr": 0.1, "candidates": 1,
                         "distinct": 0.0, **options})


def test_refinement_brings_samples_onto_their_targets(classifier, scorer):
    generator = ConditionalGenerator(TargetSpace.from_model(classifier, "va"), SMALL)
    weights = [p.detach().clone() for p in generator.parameters()]
    plain = evaluate(generator, scorer, cells=4, latents=2, size=SIZE)
    refined = evaluate(generator, scorer, cells=4, latents=2, size=SIZE,
                       refinement=_refinement(steps=25))
    assert refined.summary()["mae"] < 0.6 * plain.summary()["mae"]
    assert refined.reached.sum() > plain.reached.sum()
    info = refined.refined  # at most 25 steps per start, each of 16 images and each restart
    assert 0 < info["image_steps"] <= 25 * (16 + info["restarts"])
    assert refined.summary()["refine_image_steps"] == refined.refined["image_steps"]
    assert all(torch.equal(a, b) for a, b in zip(weights, generator.parameters(), strict=True))
    assert plain.refined == {}


def test_categorical_refinement_raises_the_target_probability(classifier, scorer):
    generator = ConditionalGenerator(TargetSpace.from_model(classifier, "categorical"), SMALL)
    plain = _evaluate_categorical(generator, scorer)
    refined = evaluate(generator, scorer, latents=3, size=SIZE,
                       refinement=_refinement(steps=10)).summary()
    assert refined["target_prob"] > plain["target_prob"] + 0.2


def _weights(generator: ConditionalGenerator, values, z: torch.Tensor) -> torch.Tensor:
    """The CPPN weights refinement starts from: the generator's images as drawn."""
    return generator.program_weights(generator.embedding(values, z))


def test_refinement_is_per_image_and_stops_where_told(classifier):
    generator = ConditionalGenerator(TargetSpace.from_model(classifier, "va"), SMALL)
    targets = np.array([[2.0, 8.0], [8.0, 2.0], [5.0, 5.0]])
    z = generator.latents(3, seed=1)
    with torch.no_grad():
        start = _weights(generator, generator.space.as_tensor(targets), z)
    options = _refinement(steps=4)
    together, info = refine(generator, classifier, targets, z, options)
    alone, _ = refine(generator, classifier, targets[1:2], z[1:2], options)
    torch.testing.assert_close(together[1], alone[0], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(together, start) and info["image_steps"] == 12
    # an image marked done keeps its embedding; the others go on
    seen = []

    def first_done(rows, predictions):
        seen.append(rows.tolist())
        return rows == 0

    stopped, info = refine(generator, classifier, targets, z, options, done=first_done)
    assert seen == [[0, 1, 2], [1, 2], [1, 2], [1, 2]]
    torch.testing.assert_close(stopped[0], start[0], atol=0, rtol=0)
    torch.testing.assert_close(stopped[1:], together[1:], atol=1e-5, rtol=1e-4)
    assert info["done"] == pytest.approx(1 / 3) and info["image_steps"] == 9
    untouched, info = refine(generator, classifier, targets, z, _refinement(steps=50, seconds=0))
    assert info["steps"] == 0 and torch.equal(untouched, start)
    # steps too small to lower any loss by 0.1 %: every image stalls after `patience` more
    # steps and keeps its best measured embedding, within 1e-9 steps of the starting one
    stalled, info = refine(generator, classifier, targets, z,
                           _refinement(steps=50, lr=1e-9, patience=3))
    assert info["steps"] == 4 and info["stalled"] == 1.0 and info["done"] == 0.0
    torch.testing.assert_close(stalled, start, atol=1e-6, rtol=0)


def test_stalled_images_restart_from_fresh_latents_where_a_sibling_hit(classifier):
    generator = ConditionalGenerator(TargetSpace.from_model(classifier, "va"), SMALL)
    # images 0 and 1 share a target; image 0 hits at once, image 2 aims elsewhere, never hits
    targets = np.array([[3.0, 7.0], [3.0, 7.0], [8.0, 2.0]])
    z = generator.latents(3, seed=1)
    values = generator.space.as_tensor(targets)
    with torch.no_grad():
        start = _weights(generator, values, z)

    def loss(embedding: torch.Tensor, aims: torch.Tensor) -> torch.Tensor:
        images = torch.sigmoid(generator.program_logits(embedding, SIZE))
        prediction = classify(classifier, generator.space, [images], SIZE)
        return fit_per_image(generator.space, prediction, aims, "distance").detach()

    options = _refinement(steps=60, lr=1e-9, patience=2, restarts=3, borrow=False)
    kept, info = refine(generator, classifier, targets, z, options,
                        done=lambda rows, _: rows == 0, seed=5)
    # lr 1e-9 lowers no loss: image 1 stalls 2 steps after each start and spends its 3
    # restarts, image 2 stalls once and stops, since no image has reached its target
    assert info["restarts"] == 3 and info["stalled"] == pytest.approx(2 / 3)
    assert info["steps"] == 12 and info["image_steps"] == 3 + 2 * 2 + 9
    torch.testing.assert_close(kept[[0, 2]], start[[0, 2]], atol=1e-6, rtol=0)
    # image 1 keeps the best of its 4 starts (the fresh latents come from `seed`)
    fresh = torch.Generator().manual_seed(5)
    with torch.no_grad():
        starts = torch.stack([start[1]] + [
            _weights(generator, values[1:2], generator.latents(1, fresh))[0] for _ in range(3)
        ])
    losses = loss(starts, values[[1, 1, 1, 1]])
    assert len(set(losses.tolist())) == 4  # four different starts
    torch.testing.assert_close(kept[1], starts[losses.argmin()], atol=1e-6, rtol=0)
    again, _ = refine(generator, classifier, targets, z, options,
                      done=lambda rows, _: rows == 0, seed=5)
    torch.testing.assert_close(again, kept, atol=0, rtol=0)
    without, info = refine(generator, classifier, targets, z,
                           _refinement(steps=60, lr=1e-9, patience=2, restarts=0),
                           done=lambda rows, _: rows == 0)
    assert info["restarts"] == 0 and info["steps"] == 3
    torch.testing.assert_close(without, start, atol=1e-6, rtol=0)


def test_images_of_unreached_targets_borrow_a_neighbours_on_target_image(classifier):
    generator = ConditionalGenerator(TargetSpace.from_model(classifier, "va"), SMALL)
    # images 0 and 1 (target A) hit at once; 2 and 3 aim one grid step away (B), 4 far (C)
    targets = np.array([[3.0, 7.0], [3.0, 7.0], [4.0, 7.0], [4.0, 7.0], [8.0, 2.0]])
    z = generator.latents(5, seed=1)
    values = generator.space.as_tensor(targets)
    with torch.no_grad():
        start = _weights(generator, values, z)
        images = torch.sigmoid(generator.program_logits(start, SIZE))
        toward_b = fit_per_image(generator.space, classify(classifier, generator.space,
                                                          [images], SIZE),
                                 values[[2] * 5], "distance")

    def hit(rows, _):
        return rows < 2

    options = _refinement(steps=60, lr=1e-9, patience=2, restarts=1)
    kept, info = refine(generator, classifier, targets, z, options, done=hit, seed=5)
    # 2 and 3 stall, then restart from A's images, a different one each ((i + k) mod 2);
    # 4 stalls and stops: A lies more than 1.5 grid steps (|A - B|) away from C
    assert info["restarts"] == 2 and info["borrowed"] == 2
    assert info["steps"] == 6 and info["image_steps"] == 5 + 2 * 3 + 3 * 2
    for image, donor in ((2, 0), (3, 1)):
        best = donor if toward_b[donor] < toward_b[image] else image
        torch.testing.assert_close(kept[image], start[best], atol=1e-6, rtol=0)
    torch.testing.assert_close(kept[[0, 1, 4]], start[[0, 1, 4]], atol=1e-6, rtol=0)
    assert toward_b[:2].min() < toward_b[2:4].max()  # a borrowed start was kept somewhere
    alone, info = refine(generator, classifier, targets, z,
                         _refinement(steps=60, lr=1e-9, patience=2, restarts=1, borrow=False),
                         done=hit, seed=5)
    assert info["restarts"] == info["borrowed"] == 0
    torch.testing.assert_close(alone, start, atol=1e-6, rtol=0)


def test_every_start_is_the_best_of_its_candidate_latents(classifier):
    generator = ConditionalGenerator(TargetSpace.from_model(classifier, "va"), SMALL)
    targets = np.array([[3.0, 7.0], [8.0, 2.0], [5.0, 5.0]])
    z = generator.latents(3, seed=1)
    values = generator.space.as_tensor(targets)

    def loss(embedding: torch.Tensor, aims: torch.Tensor) -> torch.Tensor:
        images = torch.sigmoid(generator.program_logits(embedding, SIZE))
        prediction = classify(classifier, generator.space, [images], SIZE)
        return fit_per_image(generator.space, prediction, aims, "distance").detach()

    # lr 1e-9 and one step: the kept embedding is the start itself
    kept, _ = refine(generator, classifier, targets, z,
                     _refinement(steps=1, lr=1e-9, candidates=3), seed=5)
    fresh = generator.latents(6, torch.Generator().manual_seed(5)).reshape(3, 2, -1)
    with torch.no_grad():
        candidates = _weights(generator,
            values.repeat_interleave(3, dim=0), torch.cat([z[:, None], fresh], 1).flatten(0, 1)
        ).reshape(3, 3, -1)
    losses = loss(candidates.flatten(0, 1), values.repeat_interleave(3, dim=0)).reshape(3, 3)
    assert len(set(losses.flatten().tolist())) == 9  # nine different images
    best = losses.argmin(dim=1)
    assert (best != 0).any()  # some image starts away from its own latent
    torch.testing.assert_close(kept, candidates[torch.arange(3), best], atol=1e-6, rtol=0)
    single, _ = refine(generator, classifier, targets, z,
                       _refinement(steps=1, lr=1e-9, candidates=1), seed=5)
    torch.testing.assert_close(single, candidates[:, 0], atol=1e-6, rtol=0)


def test_a_narrow_refinement_steps_the_images_nearest_their_targets_first(classifier):
    generator = ConditionalGenerator(TargetSpace.from_model(classifier, "va"), SMALL)
    targets = np.array([[3.0, 7.0], [8.0, 2.0], [5.0, 5.0]])
    stepped: list[int] = []

    def record(rows: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        stepped.extend(rows.tolist())
        return np.zeros(len(rows), dtype=bool)

    options = _refinement(steps=2, lr=1e-9, patience=0, candidates=2, width=1)
    kept, info = refine(generator, classifier, targets, generator.latents(3, seed=1), options,
                        done=record)
    images = torch.sigmoid(generator.program_logits(kept, SIZE))
    prediction = classify(classifier, generator.space, [images], SIZE)
    losses = fit_per_image(generator.space, prediction, generator.space.as_tensor(targets),
                           "distance").detach()
    order = torch.argsort(losses).tolist()
    # one image per pass, each its 2 steps, the lowest screened loss first
    assert stepped == [i for i in order for _ in range(2)]
    assert info["steps"] == 6 and info["image_steps"] == 6 and info["screened"] == 6


def test_refined_programs_render_like_the_network_draws_them(classifier):
    generator = ConditionalGenerator(TargetSpace.from_model(classifier, "va"), SMALL)
    z = generator.latents(2, seed=3)
    embedding, _ = refine(generator, classifier, [[3.0, 7.0]] * 2, z, _refinement(steps=3))
    drawn = torch.sigmoid(generator.program_logits(embedding, 24)).detach()
    drawn = (drawn.permute(0, 2, 3, 1) * 255).round().numpy()
    for renderer in ("numba", "torch"):
        rendered = generator.render_programs(embedding, 24, renderer=renderer).astype(int)
        assert np.abs(rendered - drawn).max() <= 2


def test_program_weights_draw_the_network_and_refinement_moves_all_of_them(classifier):
    generator = ConditionalGenerator(TargetSpace.from_model(classifier, "va"), SMALL)
    values = generator.space.as_tensor([[3.0, 7.0], [6.0, 2.0]])
    z = generator.latents(2, seed=3)
    embedding = generator.embedding(values, z)
    torch.testing.assert_close(generator.program_logits(generator.program_weights(embedding), 16),
                               generator.logits(embedding, 16), atol=1e-5, rtol=1e-5)
    start = _weights(generator, values, z).detach()
    kept, _ = refine(generator, classifier, values, z, _refinement(steps=3))
    hidden = SMALL.hidden
    coords = (kept - start)[:, : hidden * 4].reshape(2, hidden, 4)[:, :, :3]
    # the first layer's coordinate weights, which every embedding shares, differ per image
    assert coords.abs().amax(dim=(1, 2)).min() > 0
    assert not torch.allclose(kept[0, : hidden * 4], kept[1, : hidden * 4])


def test_bad_refinement_options_are_config_errors(classifier):
    for bad in ({"steps": -1}, {"lr": 0.0}, {"seconds": -1.0}, {"size": 4}, {"patience": -1},
                {"restarts": -1}, {"candidates": 0}, {"width": 0}, {"borrow": 1},
                {"fit_loss": "l1"}):
        with pytest.raises(ConfigError, match="refinement option"):
            Refinement(**bad)
    generator = ConditionalGenerator(TargetSpace.from_model(classifier, "va"), SMALL)
    with pytest.raises(ConfigError, match="2 targets for 3 latents"):
        refine(generator, classifier, [[5.0, 5.0]] * 2, generator.latents(3), _refinement())


def test_resumed_training_equals_uninterrupted(classifier, tmp_path):
    path = tmp_path / "gen.pt"
    straight = _trainer(classifier, batch_size=2)
    train(straight, 6)
    first = _trainer(classifier, batch_size=2)
    assert not train(first, 6, checkpoint=path, classifier_source="tiny",
                     should_stop=lambda: first.step == 3)
    checkpoint = load_generator(path)
    assert checkpoint.steps == 3 and checkpoint.classifier["source"].endswith("tiny")
    resumed = resume_trainer(checkpoint, classifier)
    assert train(resumed, 6, checkpoint=path)
    for a, b in zip(straight.generator.state_dict().values(),
                    resumed.generator.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert [m["loss"] for m in resumed.history] == [m["loss"] for m in straight.history]


# --- checkpoints -----------------------------------------------------------------------------


def test_save_and_load_round_trip(classifier, tmp_path):
    generator = ConditionalGenerator(TargetSpace.from_model(classifier, "categorical"),
                                     Architecture(hidden=12, depth=2, latent_dim=5, seed=3))
    path = save_generator(tmp_path / "sub" / "gen.pt", generator, classifier,
                          classifier_source="tiny.pt")
    loaded = load_generator(path)
    assert loaded.generator.arch == generator.arch
    assert loaded.generator.space == generator.space and loaded.training is None
    assert loaded.classifier["identity"] == classifier.identity
    assert loaded.classifier["outputs"] == classifier.output_names
    z = generator.latents(3, seed=0)
    np.testing.assert_array_equal(loaded.generator.render(["red", "green", "blue"], z, 16),
                                  generator.render(["red", "green", "blue"], z, 16))
    loaded.check_classifier(classifier)
    other = build_model("resnet18", ["va"], weights="none")
    with pytest.raises(CheckpointError, match="was trained against classifier"):
        loaded.check_classifier(other)
    with pytest.raises(CheckpointError, match="without training state"):
        resume_trainer(loaded, classifier)


def test_bad_checkpoints_are_one_line_checkpoint_errors(classifier, tmp_path):
    good = save_generator(tmp_path / "good.pt",
                          ConditionalGenerator(TargetSpace.from_model(classifier, "va"), SMALL),
                          classifier)
    data = good.read_bytes()
    cases = {
        "missing.pt": None,
        "garbage.pt": b"not a checkpoint at all",
        "truncated.pt": data[: len(data) // 2],
    }
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
    torch.save({"format": "something-else"}, tmp_path / "foreign.pt")
    bad_arch = torch.load(good, weights_only=True)
    bad_arch["architecture"]["hidden"] = 20
    torch.save(bad_arch, tmp_path / "mismatch.pt")
    for name in [*cases, "foreign.pt", "mismatch.pt"]:
        with pytest.raises(CheckpointError) as info:
            load_generator(tmp_path / name)
        message = str(info.value)
        assert name in message and "\n" not in message


# --- sampling --------------------------------------------------------------------------------


def test_grid_layout_puts_valence_on_x_and_arousal_up(classifier):
    generator = ConditionalGenerator(TargetSpace.from_model(classifier, "va"), SMALL)
    targets = grid_targets(generator, 4, 2)
    np.testing.assert_allclose(targets[0], [2.0, 7.0])   # top left: low valence, high arousal
    np.testing.assert_allclose(targets[3], [8.0, 7.0])   # top right
    np.testing.assert_allclose(targets[-1], [8.0, 3.0])  # bottom right
    images = sample_grid(generator, 4, 2, 8)
    assert images.shape == (8, 8, 8, 3)
    categorical = ConditionalGenerator(TargetSpace.from_model(classifier, "categorical"), SMALL)
    np.testing.assert_array_equal(grid_targets(categorical, 2, 99), [0, 0, 1, 1, 2, 2])
    rows = sample_grid(categorical, 2, 1, 8)
    np.testing.assert_array_equal(rows[0], categorical.render(["red"],
                                                              categorical.latents(2)[:1], 8)[0])
    with pytest.raises(ConfigError, match="vad generators only"):
        grid_targets(generator, 2, 2, dominance=5.0)
    vad = TargetSpace("vad", ("valence", "arousal", "dominance"), ((1.0, 9.0),) * 3)
    vad_generator = ConditionalGenerator(vad, SMALL)
    np.testing.assert_allclose(grid_targets(vad_generator, 2, 2),
                               [[3, 7, 5], [7, 7, 5], [3, 3, 5], [7, 3, 5]])
    np.testing.assert_allclose(grid_targets(vad_generator, 1, 1, dominance=2.0), [[5, 5, 2]])
    with pytest.raises(ConfigError, match="dominance target 9.5 is outside"):
        grid_targets(vad_generator, 2, 2, dominance=9.5)


# --- command line ----------------------------------------------------------------------------


def test_cli_train_resume_sample_evaluate(classifier, tmp_path, capsys):
    model_path = save_model(classifier, tmp_path / "tiny.pt")
    gen = tmp_path / "gen.pt"
    small = ["--train-size", "32", "--classifier-size", "32", "--hidden", "8", "--depth", "2",
             "--embed-dim", "8", "--device", "cpu"]
    base = ["cgen", "train", "--classifier", str(model_path), "--out", str(gen)]
    assert main([*base, "--target", "va", "--steps", "3", *small]) == 0
    assert load_generator(gen).steps == 3
    assert main([*base, "--target", "va", "--steps", "3", *small]) == 2
    assert "exists: add --resume" in capsys.readouterr().err
    assert main([*base, "--resume", "--lr", "0.1"]) == 2
    assert "--lr cannot be combined with --resume" in capsys.readouterr().err
    assert main(["cgen", "train", "--out", str(gen), "--resume", "--steps", "5",
                 "--device", "cpu"]) == 0
    assert load_generator(gen).steps == 5

    png = tmp_path / "grid.png"
    assert main(["cgen", "sample", str(gen), "--grid", "3x2", "--size", "16", "-o", str(png),
                 "--device", "cpu"]) == 0
    from PIL import Image

    assert Image.open(png).size == (3 * 18 + 2, 2 * 18 + 2)
    exact = tmp_path / "grid-torch.png"
    assert main(["cgen", "sample", str(gen), "--grid", "3x2", "--size", "16", "-o", str(exact),
                 "--device", "cpu", "--renderer", "torch"]) == 0
    numba_pixels, torch_pixels = (np.asarray(Image.open(p), dtype=int) for p in (png, exact))
    assert np.abs(numba_pixels - torch_pixels).max() <= 2
    assert main(["cgen", "sample", str(gen), "--target", "7,3", "--count", "2", "--size", "16",
                 "-o", str(tmp_path / "one.png"), "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["cgen", "sample", str(gen), "--target", "12,3", "-o", str(png),
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "valence target 12 is outside" in err and len(err.strip().splitlines()) == 1

    summary = tmp_path / "eval.json"
    assert main(["cgen", "evaluate", str(gen), "--cells", "3", "--latents", "2", "--size", "16",
                 "--score-size", "32", "--json", str(summary), "--csv",
                 str(tmp_path / "eval.csv"), "--device", "cpu"]) == 0
    result = json.loads(summary.read_text())
    assert result["summary"]["targets"] == 9 and result["archive"]["dims"] == [3, 3]
    assert len((tmp_path / "eval.csv").read_text().splitlines()) == 10
    assert len(result["targets"]) == 9 and {"distinct_hits", "reached"} <= set(result["targets"][0])
    out = capsys.readouterr().out
    assert "on-target images per cell" in out and "reached_distinct" in out
    assert main(["cgen", "evaluate", str(gen), "--cells", "3", "--latents", "2", "--size", "16",
                 "--score-size", "32", "--json", str(summary), "--device", "cpu",
                 "--refine", "2", "--refine-lr", "0.2", "--refine-restarts", "3",
                 "--refine-candidates", "2", "--refine-width", "4"]) == 0
    refined = json.loads(summary.read_text())
    assert refined["refinement"]["steps"] == 2 and refined["refinement"]["lr"] == 0.2
    assert refined["refinement"]["restarts"] == 3 and refined["refinement"]["width"] == 4
    done = refined["summary"]  # 18 images, at most 2 steps per start, at most 4 per pass
    assert done["refine_image_steps"] <= 2 * (18 + done["refine_restarts"])
    assert done["refine_image_steps"] <= 4 * done["refine_steps"]
    assert done["refine_screened"] == 2 * (18 + done["refine_restarts"])
    assert main(["cgen", "sample", str(gen), "--target", "7,3", "--count", "2", "--size", "16",
                 "-o", str(tmp_path / "refined.png"), "--device", "cpu", "--refine", "2"]) == 0
    assert "each image refined 2 steps" in capsys.readouterr().out

    # --compare: the cells a search run filled, read from its config.json + elites.csv.
    spec = make_archive_spec("va", class_names=CLASSES, regression_names=["valence", "arousal"],
                             scales=classifier.scales, cells=3)
    run = tmp_path / "run"
    run.mkdir()
    config = {"run": {"algorithm": "map-elites"}, "archive": spec.to_dict(),
              "classifiers": [{"source": str(model_path), "identity": classifier.identity}]}
    (run / "config.json").write_text(json.dumps(config))
    (run / "elites.csv").write_text("cell,objective\n" + "".join(f"{c},0\n" for c in range(9)))
    assert main(["cgen", "evaluate", str(gen), "--compare", str(run), "--latents", "2",
                 "--size", "16", "--score-size", "32", "--json", str(summary),
                 "--device", "cpu"]) == 0
    compared = json.loads(summary.read_text())
    reached = sum(row["reached"] for row in compared["targets"])
    assert compared["compare"][0]["run_cells"] == 9 and compared["compare"][0]["reached"] == reached
    assert f"reaches {reached} of its 9 cells" in capsys.readouterr().out
    config["classifiers"][0]["identity"] = "f" * 64
    (run / "config.json").write_text(json.dumps(config))
    assert main(["cgen", "evaluate", str(gen), "--compare", str(run)]) == 2
    assert "was scored by classifier ffffffffffff" in capsys.readouterr().err
    (run / "elites.csv").unlink()
    assert main(["cgen", "evaluate", str(gen), "--compare", str(run)]) == 2
    assert "no archive.npz and no elites.csv" in capsys.readouterr().err

    (tmp_path / "broken.pt").write_bytes(b"\x00" * 10)
    assert main(["cgen", "evaluate", str(tmp_path / "broken.pt")]) == 2
    assert "broken.pt is not a readable generator checkpoint" in capsys.readouterr().err


def test_an_on_target_twin_of_a_finished_sibling_is_pushed_apart(classifier):
    generator = ConditionalGenerator(TargetSpace.from_model(classifier, "va"), SMALL)
    targets = np.array([[3.0, 7.0]] * 3)
    z = generator.latents(1, seed=2).repeat(3, 1)  # three copies of one image

    def features(embedding):
        with torch.no_grad():
            images = torch.sigmoid(generator.program_logits(embedding, SIZE))
            out = classify(classifier, generator.space, [images], SIZE)["embedding"]
        return torch.nn.functional.normalize(out, dim=1)

    def everyone(rows, _):
        return np.ones(len(rows), dtype=bool)

    frozen = _refinement(steps=4, lr=1e-9, patience=0, distinct=0.05)
    kept, info = refine(generator, classifier, targets, z, frozen, done=everyone)
    assert info["done"] == pytest.approx(1 / 3) and info["steps"] == 4  # the copies never part
    _, info = refine(generator, classifier, targets, z, dataclasses.replace(frozen, distinct=0.0),
                     done=everyone)
    assert info["done"] == 1.0 and info["steps"] == 1  # without the rule, twins count
    pushed, info = refine(generator, classifier, targets, z,
                          _refinement(steps=40, patience=0, distinct=0.05, repel=100.0),
                          done=everyone)
    unit = features(pushed)
    apart = 1.0 - unit @ unit.T
    assert info["done"] > 1 / 3  # the hinge moved a copy away from the finished one
    done_pairs = apart[0, 1:][apart[0, 1:] > 0]
    assert len(done_pairs) and float(done_pairs.max()) >= 0.05


def test_a_narrow_refinement_steps_the_images_of_reached_targets_first(classifier):
    generator = ConditionalGenerator(TargetSpace.from_model(classifier, "va"), SMALL)
    # image 0 is on target at once; image 2 shares its target, image 1 aims elsewhere
    targets = np.array([[3.0, 7.0], [8.0, 2.0], [3.0, 7.0]])
    stepped: list[int] = []

    def first_only(rows: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        stepped.extend(rows.tolist())
        return rows == 0

    options = _refinement(steps=3, lr=1e-9, patience=0, width=1)  # equal priorities: 0
    refine(generator, classifier, targets, generator.latents(3, seed=1), options,
           done=first_only)
    # by index alone image 1 would go next; image 2's target is reached, so it goes first
    assert stepped == [0, 2, 2, 2, 1, 1, 1]
