"""Genotype operators, determinism, serialisation, genome files and the render command."""

from __future__ import annotations

import json
import pickle
import random

import numpy as np
import pytest

from evoemotion.cli import main
from evoemotion.errors import ConfigError, GenomeError
from evoemotion.genotypes import load_genotype
from evoemotion.genotypes.files import read_genome, write_genome
from evoemotion.genotypes.neat import NeatGenome
from evoemotion.render import render

KINDS = ("sims", "cppn", "cppn-neat")


@pytest.fixture(scope="module", params=KINDS)
def g(request):
    return load_genotype(request.param)


def _dicts(g, genomes):
    return [json.dumps(g.to_dict(x)) for x in genomes]


def test_same_rng_state_gives_same_genomes_and_mutants(g):
    a = g.random(np.random.default_rng(11), 5)
    b = g.random(np.random.default_rng(11), 5)
    assert _dicts(g, a) == _dicts(g, b)
    assert _dicts(g, a) != _dicts(g, g.random(np.random.default_rng(12), 5))
    ra, rb = np.random.default_rng(3), np.random.default_rng(3)
    assert _dicts(g, [g.mutate(x, ra) for x in a]) == _dicts(g, [g.mutate(x, rb) for x in a])


def test_mutation_leaves_the_parent_untouched_and_changes_the_child(g):
    rng = np.random.default_rng(5)
    parents = g.random(rng, 8)
    before = _dicts(g, parents)
    children = [g.mutate(x, rng) for x in parents]
    assert _dicts(g, parents) == before
    assert sum(c != p for c, p in zip(_dicts(g, children), before, strict=True)) >= 6


def test_python_random_state_is_not_disturbed(g):
    random.seed(1234)
    state = random.getstate()
    rng = np.random.default_rng(0)
    genomes = g.random(rng, 3)
    g.mutate(genomes[0], rng)
    if g.has_crossover:
        g.crossover(genomes[0], genomes[1], rng)
    assert random.getstate() == state


def test_crossover_mixes_parents_or_is_refused(g):
    rng = np.random.default_rng(8)
    a, b = g.random(rng, 2)
    if not g.has_crossover:
        with pytest.raises(ConfigError, match="no crossover"):
            g.crossover(a, b, rng)
        return
    before = _dicts(g, [a, b])
    c, d = g.crossover(a, b, rng)
    assert _dicts(g, [a, b]) == before
    assert _dicts(g, [c, d]) != before
    assert render(g, [c, d], 8).shape == (2, 8, 8, 3)


def test_dict_json_pickle_round_trips(g):
    genomes = g.random(np.random.default_rng(2), 4)
    for genome in genomes:
        text = json.dumps(g.to_dict(genome))
        back = g.from_dict(json.loads(text))
        assert json.dumps(g.to_dict(back)) == text
        assert g.to_text(back) == g.to_text(genome)
        assert json.dumps(g.to_dict(pickle.loads(pickle.dumps(genome)))) == text
    again = g.from_dict(json.loads(json.dumps(g.to_dict(genomes[0]))))
    assert np.array_equal(render(g, [again], 16), render(g, genomes[:1], 16))


def test_from_dict_names_the_bad_field(g):
    good = g.to_dict(g.random(np.random.default_rng(0), 1)[0])
    with pytest.raises(GenomeError, match="'kind'"):
        g.from_dict({**good, "kind": "other"})
    field = {"sims": "trees", "cppn": "vector", "cppn-neat": "nodes"}[g.kind]
    with pytest.raises(GenomeError, match=f"'{field}'"):
        g.from_dict({k: v for k, v in good.items() if k != field})


def test_sims_trees_respect_the_bloat_limits_and_parse_safely():
    g = load_genotype("sims")
    rng = np.random.default_rng(9)
    genomes = g.random(rng, 6)
    for _ in range(60):
        genomes = [g.mutate(x, rng) for x in genomes]
        pairs = zip(genomes[::2], genomes[1::2], strict=True)
        genomes = [c for pair in pairs for c in g.crossover(*pair, rng)]
    for genome in genomes:
        for tree in genome.trees:
            assert tree.height <= g.config.max_depth and len(tree) <= g.config.max_size
    bad = {"kind": "sims", "trees": ["add(x, y)", "__import__('os')", "x"]}
    with pytest.raises(GenomeError, match=r"'trees\[1\]': unknown name"):
        g.from_dict(bad)
    with pytest.raises(GenomeError, match=r"'trees\[0\]': incomplete"):
        g.from_dict({"kind": "sims", "trees": ["add(x)", "y", "r"]})
    with pytest.raises(GenomeError, match=r"'trees\[2\]': unexpected"):
        g.from_dict({"kind": "sims", "trees": ["x", "y", "r x"]})


def test_sims_compiles_to_postfix_with_channels_on_the_stack_bottom():
    g = load_genotype("sims")
    genome = g.from_dict({"kind": "sims", "trees": ["sub(x, 0.5)", "y", "lerp(x, y, r)"]})
    program = g.compile([genome])
    ops = program.ops[0, : program.lengths[0]].tolist()
    # sub(x, 0.5) -> push 0.5, push x, sub; y -> push y; lerp -> push r, y, x, lerp
    assert ops == [4, 0, 21, 1, 2, 1, 0, 41]
    assert program.args[0, 0] == np.float32(0.5) and program.depth == 5


def test_cppn_vector_layout_bounds_and_activation_genes():
    g = load_genotype("cppn")
    n_in, width = len(g.config.inputs), g.config.layer_width
    n_weights = n_in * width + width * width + width * 3
    assert g.solution_dim == n_weights + 2 * width
    assert g.bounds == [(-3.0, 3.0)] * g.solution_dim
    genomes = np.stack(g.random(np.random.default_rng(1), 50))
    assert genomes.shape == (50, g.solution_dim) and np.abs(genomes).max() <= 3.0
    vector = np.zeros(g.solution_dim)
    k = len(g.config.activations)
    vector[n_weights:] = np.linspace(-3, 3, 2 * width)
    codes = g.hidden_codes(vector[None])[0]
    assert codes[0] == g._codes[0] and codes[-1] == g._codes[k - 1]
    assert list(codes) == sorted(codes, key=list(g._codes).index)
    mutant = g.mutate(np.full(g.solution_dim, 2.99), np.random.default_rng(0))
    assert mutant.max() <= 3.0 and mutant.shape == (g.solution_dim,)
    with pytest.raises(GenomeError, match="genes"):
        g.compile([np.zeros(g.solution_dim + 1)])


def test_neat_graphs_stay_acyclic_and_within_limits():
    g = load_genotype("cppn-neat")
    rng = np.random.default_rng(4)
    genomes = g.random(rng, 6)
    for _ in range(80):
        genomes = [g.mutate(x, rng) for x in genomes]
    for genome in genomes:
        assert isinstance(genome, NeatGenome)
        hidden = [n for n in genome.nodes if n.id not in g.outputs]
        assert len(hidden) <= g.config.max_hidden
        assert len(genome.connections) <= g.config.max_connections
        assert g.from_dict(g.to_dict(genome)) == genome  # re-checks acyclicity
    grown = max(genomes, key=lambda x: len(x.nodes))
    assert len(grown.nodes) > 3 + g.config.initial_hidden
    cyclic = g.to_dict(grown)
    first = cyclic["connections"][0]
    cyclic["connections"].append({**first, "src": first["dst"], "dst": first["src"]})
    with pytest.raises(GenomeError, match="connections"):
        g.from_dict(cyclic)


def test_neat_add_node_splits_a_connection_keeping_its_weight():
    g = load_genotype("cppn-neat")
    from evoemotion.genotypes.neat import _Draft

    genome = g.random(np.random.default_rng(0), 1)[0]
    draft = _Draft(genome)
    before = {k: tuple(v) for k, v in draft.conns.items()}
    assert g._add_node(draft, np.random.default_rng(1))
    (new,) = set(draft.nodes) - {n.id for n in genome.nodes}
    (src, _), (_, dst) = [k for k in draft.conns if new in k]
    assert draft.conns[(src, new)] == [1.0, True]
    assert draft.conns[(new, dst)] == [before[(src, dst)][0], True]
    assert draft.conns[(src, dst)][1] is False


def test_genome_files_embed_the_preset(tmp_path):
    g = load_genotype("sims")
    genome = g.random(np.random.default_rng(0), 1)[0]
    path = tmp_path / "elite.json"
    write_genome(path, g, genome, objective=0.5)
    data = json.loads(path.read_text())
    assert data["preset"] == g.preset and data["objective"] == 0.5
    again, back = read_genome(path)
    assert again.preset == g.preset and g.to_text(back) == g.to_text(genome)
    named = tmp_path / "named.json"
    named.write_text(json.dumps(g.to_dict(genome)))
    assert read_genome(named)[0].name == "sims"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**data, "trees": ["x", "y"]}))
    with pytest.raises(GenomeError, match=r"bad.json: field 'trees'"):
        read_genome(bad)


def test_render_command_writes_grids_and_single_genomes(tmp_path, capsys):
    from PIL import Image

    grid_png, genomes = tmp_path / "grid.png", tmp_path / "genomes"
    args = [
        "render",
        "--random",
        "cppn",
        "-n",
        "3",
        "--size",
        "10",
        "--columns",
        "3",
        "-o",
        str(grid_png),
        "--save-genomes",
        str(genomes),
    ]
    assert main(args) == 0
    assert Image.open(grid_png).size == (3 * 12 + 2, 12 + 2)
    saved = sorted(genomes.glob("*.json"))
    assert len(saved) == 3
    single = tmp_path / "out" / "one.png"
    assert main(["render", str(saved[1]), "--size", "24", "-o", str(single)]) == 0
    image = np.asarray(Image.open(single))
    g, genome = read_genome(saved[1])
    assert np.array_equal(image, render(g, [genome], 24)[0])
    assert main(["render", str(saved[1]), "--random", "cppn", "-o", str(single)]) == 2
    assert "either a SOURCE" in capsys.readouterr().err
