"""The Numba renderers against the numpy reference, the fast math against exact math, and
resolution independence."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evoemotion import render as render_module
from evoemotion.errors import ConfigError
from evoemotion.genotypes import load_genotype
from evoemotion.render import reference as ref
from evoemotion.render import render
from evoemotion.render.images import grid, save_png
from evoemotion.render.ops import ACTIVATIONS, FUNCTIONS
from evoemotion.render.reference import render_reference

KINDS = ("sims", "cppn", "cppn-neat")
ONE_LEVEL = 1 / 255

rng0 = np.random.default_rng(0)
SAMPLES = np.concatenate([np.linspace(-20, 20, 200_001), rng0.uniform(-1e4, 1e4, 50_000)]).astype(
    np.float32
)


def _max_level_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max(initial=0))


@pytest.fixture(scope="module")
def genotypes():
    return {kind: load_genotype(kind) for kind in KINDS}


# ------------------------------------------------------------------ fast math accuracy


@pytest.mark.parametrize(
    ("fast", "exact", "output_range"),
    [
        (ref.fsin, np.sin, 2.0),
        (ref.fcos, np.cos, 2.0),
        (ref.ftanh, np.tanh, 2.0),
        (ref.fsigmoid, lambda x: 1 / (1 + np.exp(-x)), 1.0),
        (ref.fgauss, lambda x: np.exp(-x * x), 1.0),
    ],
    ids=["sin", "cos", "tanh", "sigmoid", "gauss"],
)
def test_bounded_approximations_deviate_less_than_one_level(fast, exact, output_range):
    with np.errstate(over="ignore"):
        error = np.abs(fast(SAMPLES) - exact(SAMPLES.astype(np.float64)))
    assert error.max() < output_range * ONE_LEVEL


def test_exp_log_atan2_approximations_are_accurate():
    x = np.linspace(-87, 88, 100_001).astype(np.float32)
    assert np.abs(ref.fexp(x) / np.exp(x.astype(np.float64)) - 1).max() < 1e-6
    v = np.exp(rng0.uniform(np.log(1e-6), np.log(1e38), 100_000)).astype(np.float32)
    assert np.abs(ref.flog_abs(v) - np.log(v.astype(np.float64))).max() < 1e-4
    assert ref.flog_abs(np.float32([0.0, -np.e]))[0] == pytest.approx(np.log(1e-6), abs=1e-4)
    assert ref.flog_abs(np.float32([-np.e]))[0] == pytest.approx(1.0, abs=1e-5)
    y, x = rng0.uniform(-5, 5, (2, 100_000)).astype(np.float32)
    exact = np.arctan2(y.astype(np.float64), x) / np.pi
    assert np.abs(ref.fatan2pi(y, x) - exact).max() < 1e-6


def test_gaussian_tails_stay_out_of_the_subnormal_range():
    # subnormal floats make x86 arithmetic ~100x slower: every gauss, Numba's (through the
    # reference it matches), the torch renderer's and the generator's, stops at exp(-40)
    from evoemotion.cgen.network import _IN_PLACE, ACTIVATIONS
    from evoemotion.render.differentiable import _ACTIVATIONS

    x = np.linspace(-1e3, 1e3, 200_001).astype(np.float32)
    tiny = np.finfo(np.float32).tiny
    t = torch.from_numpy(x)
    outputs = {
        "reference": ref.fgauss(x),
        "torch renderer": _ACTIVATIONS["gauss"](t).numpy(),
        "generator": ACTIVATIONS["gauss"](t).numpy(),
        "generator in place": _IN_PLACE["gauss"](t.clone()).numpy(),
    }
    for name, out in outputs.items():
        assert out.min() >= tiny, name
        assert out.min() == pytest.approx(np.exp(-40.0), rel=1e-3), name
        assert np.abs(out - np.exp(-(x.astype(np.float64) ** 2))).max() < 1e-6, name


def test_hsv_mapping_matches_colorsys():
    h, s, v = rng0.uniform(-1, 1, (3, 2000)).astype(np.float32)
    image = ref.to_uint8(np.stack([h, s, v])[:, None, :], "hsv", (-1.0, 1.0))[0]
    pixels = zip(h, s, v, strict=True)
    expected = np.array([colorsys.hsv_to_rgb(*((c + 1) / 2 for c in p)) for p in pixels])
    assert np.abs(image / 255.0 - expected).max() <= ONE_LEVEL


# ----------------------------------------------------------- Numba against reference


@settings(max_examples=12, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    seed=st.integers(0, 2**32 - 1),
    size=st.sampled_from([8, (9, 14), (16, 5)]),
    mutations=st.integers(0, 6),
)
def test_numba_matches_reference_on_random_genomes(genotypes, kind, seed, size, mutations):
    g = genotypes[kind]
    rng = np.random.default_rng(seed)
    genomes = g.random(rng, 4)
    for _ in range(mutations):
        genomes = [g.mutate(x, rng) for x in genomes]
    fast = render(g, genomes, size)
    assert fast.shape == (4, *render_module.image_size(size), 3)
    assert fast.dtype == np.uint8
    assert _max_level_diff(fast, render_reference(g, genomes, size)) <= 1


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_tree_function_matches_reference(genotypes, function):
    g = genotypes["sims"]
    args = ["mul(x, 7.3)", "sub(y, 0.31)", "mul(r, -2.9)"][: FUNCTIONS[function][1]]
    tree = f"{function}({', '.join(args)})"
    genome = g.from_dict({"kind": "sims", "trees": [tree, f"mul({tree}, 0.5)", "x"]})
    assert _max_level_diff(render(g, [genome], 24), render_reference(g, [genome], 24)) == 0


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_matches_reference(activation):
    g = load_genotype(
        {
            "name": "one-activation",
            "kind": "cppn",
            "inputs": ["x", "y", "r", "bias"],
            "color_space": "hsv",
            "hidden_layers": 2,
            "layer_width": 3,
            "activations": [activation],
            "output_activation": activation,
        }
    )
    genomes = g.random(np.random.default_rng(1), 3)
    assert _max_level_diff(render(g, genomes, 20), render_reference(g, genomes, 20)) <= 1


@pytest.mark.parametrize("kind", ["sims", "cppn"])
def test_angle_input_matches_reference(kind):
    preset = load_genotype(kind).preset | {"name": "angle", "inputs": ["x", "angle", "r"]}
    if kind == "cppn":
        preset["inputs"].append("bias")
    g = load_genotype(preset)
    genomes = g.random(np.random.default_rng(5), 6)
    if kind == "sims":
        genomes.append(g.from_dict({"kind": "sims", "trees": ["angle", "mul(angle, r)", "x"]}))
    assert _max_level_diff(render(g, genomes, 17), render_reference(g, genomes, 17)) <= 1


def test_non_finite_values_become_zero_before_mapping(genotypes):
    g = genotypes["sims"]
    trees = ["mul(1e30, 1e30)", "sub(mul(1e30, 1e30), mul(1e30, 1e30))", "neg(mul(1e30, 1e30))"]
    genome = g.from_dict({"kind": "sims", "trees": trees})
    image = render(g, [genome], 4)
    assert np.all(image == 128)
    assert np.array_equal(image, render_reference(g, [genome], 4))


# ------------------------------------------------------------- resolution and tiling


@pytest.mark.parametrize("kind", KINDS)
def test_same_pixel_centres_give_same_pixels_at_any_size(genotypes, kind):
    g = genotypes[kind]
    genomes = g.random(np.random.default_rng(7), 3)
    small = render(g, genomes, 32)
    large = render(g, genomes, 96)
    assert np.array_equal(large[:, 1::3, 1::3], small)


def test_bands_do_not_change_the_picture(genotypes, monkeypatch):
    g = genotypes["cppn"]
    genomes = g.random(np.random.default_rng(3), 3)
    whole = render(g, genomes, (40, 30))
    monkeypatch.setattr(render_module, "BAND_PIXELS", 30 * 7)
    calls = []
    banded = render(g, genomes, (40, 30), progress=lambda *report: calls.append(report))
    assert np.array_equal(banded, whole)
    assert len(calls) > 3 and {(stage, total) for stage, _, total, _ in calls} == {("render", 1200)}
    assert sum(advance for _, advance, _, _ in calls) == 1200


def test_flat_genomes_can_be_an_array_and_batches_can_be_empty(genotypes):
    g = genotypes["cppn"]
    genomes = g.random(np.random.default_rng(4), 2)
    assert np.array_equal(render(g, np.stack(genomes), 12), render(g, genomes, 12))
    assert render(g, [], 12).shape == (0, 12, 12, 3)


@pytest.mark.parametrize("size", [0, -3, (4,), (4, 0), 2.5])
def test_bad_sizes_are_config_errors(genotypes, size):
    with pytest.raises(ConfigError, match="image size"):
        render(genotypes["cppn"], genotypes["cppn"].random(np.random.default_rng(0), 1), size)


# ----------------------------------------------------------------------- image files


def test_grid_places_images_in_rows_and_png_round_trips(tmp_path):
    from PIL import Image

    images = np.stack([np.full((4, 5, 3), 10 * i, np.uint8) for i in range(5)])
    sheet = grid(images, columns=2, gap=1)
    assert sheet.shape == (3 * 5 + 1, 2 * 6 + 1, 3)
    assert np.all(sheet[1:5, 1:6] == 0) and np.all(sheet[6:10, 7:12] == 30)
    assert np.all(sheet[11:15, 7:12] == 255)
    save_png(tmp_path / "sheet.png", sheet)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "sheet.png")), sheet)
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]
