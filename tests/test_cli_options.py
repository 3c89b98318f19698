"""One vocabulary on the command line: shared options, aliases, choices, one set of defaults."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from evoemotion.choices import MAP_ELITES_DEFAULTS, NOVELTY_DEFAULTS
from evoemotion.cli import build_parser, main


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def test_model_is_an_alias_of_classifier_everywhere():
    assert parse("classify", "x.png", "--model", "m.pt").model == "m.pt"
    assert parse("classify", "x.png", "--classifier", "m.pt").model == "m.pt"
    assert parse("run", "--model", "a.pt", "--classifier", "b.pt").classifier == ["a.pt", "b.pt"]
    assert parse("cgen", "train", "--out", "g.pt", "--model", "m.pt").classifier == "m.pt"


@pytest.mark.parametrize("word", ["native", "0", "none", "NATIVE"])
def test_native_size_is_spelled_one_way_with_the_old_spellings_kept(word):
    assert parse("run", "--score-size", word).score_size is None
    assert parse("classify", "x.png", "--size", word).size is None
    assert parse("cgen", "train", "--out", "g.pt", "--classifier-size", word).classifier_size == 0
    assert parse("cgen", "evaluate", "g.pt", "--score-size", word).score_size is None


def test_emitter_behavior_and_policy_take_their_choices_from_the_registries(capsys):
    from evoemotion.search.mapelites import EMITTERS
    from evoemotion.search.novelty import BEHAVIORS
    from evoemotion.search.novelty_archive import ADD_POLICIES

    actions = {a.dest: a for a in build_parser()._subparsers._group_actions[0]
               .choices["run"]._actions}
    assert tuple(actions["emitter"].choices) == EMITTERS
    assert tuple(actions["behavior"].choices) == BEHAVIORS
    assert tuple(actions["novelty_archive"].choices) == ADD_POLICIES
    with pytest.raises(SystemExit):
        parse("run", "--emitter", "cmaes")
    assert "invalid choice: 'cmaes'" in capsys.readouterr().err


def test_run_defaults_are_the_search_classes_own():
    from evoemotion.cli.run import _algorithm_options
    from evoemotion.search import DqdSearch, MapElites, NoveltySearch, NSLCSearch

    args = parse("run")
    cli = {"emitters": _algorithm_options(args)["emitters"], "sigma": args.sigma,
           "line_sigma": args.line_sigma,
           "behavior": args.behavior, "k": args.neighbors,
           "novelty_policy": args.novelty_archive, "novelty_add_prob": args.novelty_add_prob,
           "novelty_cap": args.novelty_cap}
    for cls, defaults in [(MapElites, MAP_ELITES_DEFAULTS), (NoveltySearch, NOVELTY_DEFAULTS),
                          (NSLCSearch, NOVELTY_DEFAULTS)]:
        parameters = inspect.signature(cls).parameters
        for name, value in defaults.items():
            assert parameters[name].default == value == cli[name], (cls, name)
    # DQD flags left unset are not passed, so DqdSearch picks the archive kind's defaults.
    dqd = _algorithm_options(parse("run", "--algorithm", "dqd"))
    parameters = inspect.signature(DqdSearch).parameters
    assert dqd == {name: parameters[name].default for name in ("emitter", "archive_lr")}


@pytest.mark.parametrize("flag", ["--device", "--seed"])
def test_shared_options_have_one_help_text_shape(flag):
    helps = []
    for command in (["run"], ["classify", "x"], ["train"], ["cgen", "train"],
                    ["cgen", "sample", "g"], ["analyze", "r"]):
        parser = build_parser()
        sub = parser._subparsers._group_actions[0].choices[command[0]]
        if command[0] == "cgen":
            sub = sub._subparsers._group_actions[0].choices[command[1]]
        for action in sub._actions:
            if flag in action.option_strings:
                helps.append(action.help)
    assert helps and all("(default: " in h for h in helps)
    if flag == "--device":
        assert all("auto (CUDA when present), cpu, cuda, cuda:INDEX" in h for h in helps)


def test_help_imports_no_torch():
    code = ("import sys; from evoemotion.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'ribs', 'numba') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_library_errors_name_parameters_and_the_command_line_shows_flags(tmp_path, capsys):
    from evoemotion.archives import make_archive_spec
    from evoemotion.cli import _command_parser, as_flags
    from evoemotion.errors import ConfigError

    with pytest.raises(ConfigError, match="drop `cells`"):
        make_archive_spec("per-class", class_names=["a", "b"], regression_names=[], scales={},
                          cells=4)
    parser = build_parser()
    run = _command_parser(parser, parser.parse_args(["run"]))
    render = _command_parser(parser, parser.parse_args(["render", "x.json"]))
    message = "`cells` 3; `k` 2; `crossover_prob` 1; `classifiers`; `kind`; `unknown_thing`"
    assert as_flags(message, run) == ("--cells 3; --neighbors 2; --crossover 1; --classifier; "
                                      "--archive; unknown_thing")
    assert as_flags("`cells` 3,5: outside", render) == "--cell 3,5: outside"
    cgen_train = _command_parser(parser, parser.parse_args(["cgen", "train", "--out", "g.pt"]))
    assert as_flags("`kind` 'x'; `steps` 0, `checkpoint_every` 1", cgen_train) == (
        "--target 'x'; --steps 0, --checkpoint-every 1"
    )
    train = _command_parser(parser, parser.parse_args(["train", "--out", "m.pt"]))
    assert as_flags("`init` m.pt differs from `seed` 3 `fractions` 0.6", train) == (
        "--from m.pt differs from --seed 3 --split 0.6"
    )
    assert main(["run", "--iterations", "-1", "--out", str(tmp_path / "r")]) == 2
    assert "evoemotion run: error: --iterations must be >= 0, got -1" in capsys.readouterr().err
