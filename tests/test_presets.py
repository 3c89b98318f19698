"""Genotype presets: the shipped files, lookup order, and one-line errors naming file+field."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from evoemotion.errors import ConfigError
from evoemotion.genotypes import available_presets, load_genotype
from evoemotion.paths import PROJECT_ROOT

SHIPPED = sorted(p.stem for p in (PROJECT_ROOT / "genotypes").glob("*.toml"))

CPPN = """kind = "cppn"
inputs = ["x", "y", "bias"]
color_space = "rgb"
hidden_layers = 1
layer_width = 4
activations = ["sin", "tanh"]
"""


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def test_the_three_kinds_ship_as_presets():
    assert {"sims", "cppn", "cppn-neat"} <= set(SHIPPED)
    assert {load_genotype(name).kind for name in ("sims", "cppn", "cppn-neat")} == {
        "sims",
        "cppn",
        "cppn-neat",
    }


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_presets_round_trip_through_their_resolved_dict(name):
    g = load_genotype(name)
    assert g.name == name
    again = load_genotype(g.preset)
    assert again.preset == g.preset and again.kind == g.kind
    assert pickle.loads(pickle.dumps(g)).preset == g.preset


def test_a_path_loads_and_names_the_preset_after_the_file(tmp_path):
    g = load_genotype(_write(tmp_path, "small", CPPN))
    # weights 3->4->3, plus one activation gene per hidden node
    assert (g.name, g.kind, g.solution_dim) == ("small", "cppn", 3 * 4 + 4 * 3 + 4)


def test_lookup_order_env_then_cwd_then_project(tmp_path, monkeypatch):
    env_dir, cwd = tmp_path / "env", tmp_path / "work"
    _write(env_dir, "cppn", CPPN.replace("layer_width = 4", "layer_width = 5"))
    _write(cwd / "genotypes", "cppn", CPPN.replace("layer_width = 4", "layer_width = 6"))
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("EVOEMOTION_GENOTYPES", str(env_dir))
    assert load_genotype("cppn").config.layer_width == 5
    monkeypatch.delenv("EVOEMOTION_GENOTYPES")
    assert load_genotype("cppn").config.layer_width == 6
    monkeypatch.chdir(tmp_path)
    assert load_genotype("cppn").config.layer_width == 8
    assert set(SHIPPED) <= set(available_presets())


def test_unknown_name_lists_where_it_looked_and_what_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_genotype("no-such-preset")
    message = str(err.value)
    assert "no-such-preset" in message and str(tmp_path / "genotypes") in message
    assert "available:" in message and "cppn" in message
    with pytest.raises(ConfigError, match="missing.toml"):
        load_genotype(tmp_path / "missing.toml")


def test_a_folder_reached_two_ways_is_searched_once(monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)  # its ./genotypes is the project's own
    monkeypatch.delenv("EVOEMOTION_GENOTYPES", raising=False)
    with pytest.raises(ConfigError) as err:
        load_genotype("no-such-preset")
    assert str(err.value).count(str(PROJECT_ROOT / "genotypes")) == 1, err.value


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [
        (lambda t: t.replace('color_space = "rgb"\n', ""), "color_space", "missing field"),
        (lambda t: t.replace("layer_width = 4", 'layer_width = "4"'), "layer_width", "integer"),
        (lambda t: t.replace("layer_width = 4", "layer_width = 0"), "layer_width", "outside"),
        (lambda t: t.replace('"rgb"', '"cmyk"'), "color_space", "not one of"),
        (lambda t: t.replace('"tanh"]', '"relu"]'), "activations", "not one of"),
        (lambda t: t + "layer_wdth = 3\n", "layer_wdth", "unknown field"),
        (lambda t: t + "output_range = [1.0, -1.0]\n", "output_range", "lo < hi"),
        (lambda t: t + "activation_genes = 1\n", "activation_genes", "true/false"),
        (lambda t: t.replace('kind = "cppn"', 'kind = "lsystem"'), "kind", "unknown kind"),
        (lambda t: t.replace('kind = "cppn"\n', ""), "kind", "missing field"),
    ],
)
def test_bad_presets_name_the_file_and_the_field(tmp_path, edit, field, words):
    path = _write(tmp_path, "bad", edit(CPPN))
    with pytest.raises(ConfigError) as err:
        load_genotype(path)
    message = str(err.value)
    assert str(path) in message and f"'{field}'" in message and words in message
    assert "\n" not in message


def test_kind_specific_checks(tmp_path):
    sims = (PROJECT_ROOT / "genotypes" / "sims.toml").read_text()
    with pytest.raises(ConfigError, match="'inputs'"):
        load_genotype(_write(tmp_path, "a", sims.replace('"x", "y", "r"', '"x", "bias"')))
    with pytest.raises(ConfigError, match="'init_depth'"):
        load_genotype(_write(tmp_path, "b", sims.replace("max_depth = 10", "max_depth = 3")))
    with pytest.raises(ConfigError, match="field 'mutation': 'grow' is not one of"):
        load_genotype(_write(tmp_path, "c", sims + "grow = 0.1\n"))
    with pytest.raises(ConfigError, match="'inputs'"):
        load_genotype(_write(tmp_path, "d", CPPN.replace('"x", "y", "bias"', '"x", "x"')))
    with pytest.raises(ConfigError, match="'init_depth'.*'max_size'"):
        load_genotype(_write(tmp_path, "e", sims.replace("max_size = 80", "max_size = 2")))
    only_add = load_genotype("sims").preset | {
        "functions": ["add"],
        "init_depth": [3, 3],
        "max_size": 8,
    }
    with pytest.raises(ConfigError, match="'init_depth'.*'max_size'"):
        load_genotype(only_add).random(np.random.default_rng(0), 1)


def test_toml_syntax_errors_name_the_file(tmp_path):
    path = _write(tmp_path, "broken", CPPN + "hidden_layers = [\n")
    with pytest.raises(ConfigError, match="broken.toml: cannot read genotype preset"):
        load_genotype(path)


def test_embedded_preset_dicts_are_validated_too():
    preset = load_genotype("cppn").preset | {"layer_width": -1}
    with pytest.raises(ConfigError, match="genotype preset 'cppn': field 'layer_width'"):
        load_genotype(preset)
