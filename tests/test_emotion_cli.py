"""The emotion commands end to end on tiny generated data: train, evaluate, classify."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from evoemotion.cli import main
from evoemotion.emotion import load_model


@pytest.fixture
def labelled_csv(tmp_path):
    rng = np.random.default_rng(1)
    lines = ["file,emotion,valence,arousal"]
    for i in range(12):
        img = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png,{['joy', 'fear', 'awe'][i % 3]},{1 + i * 0.5},{3 + i % 4}")
    path = tmp_path / "set.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_evaluate_classify_commands(tmp_path, labelled_csv, capsys):
    common = ["--lexicon", "none", "--cache-dir", str(tmp_path / "cache"), "--threads", "1"]
    model = tmp_path / "out" / "m.pt"
    argv = [
        "train",
        "--backbone",
        "mobilenet_v3_small",
        "--weights",
        "none",
        "--size",
        "32",
        "--head",
        "categorical",
        "--head",
        "va",
        "--hidden",
        "0",
        "--members",
        "2",
        "--views",
        "full",
        "--epochs",
        "3",
        "--split",
        "0.5,0.25,0.25",
        "--dataset",
        f"csv:{labelled_csv}",
        "--device",
        "cpu",
        "--out",
        str(model),
        *common,
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "test split of set" in out and "categorical  accuracy" in out and model.is_file()
    assert [h.members for h in load_model(model).head_specs] == [2, 2]
    argv = [
        "evaluate",
        str(model),
        "--size",
        "32",
        "--device",
        "cpu",
        "--confusion",
        str(tmp_path / "cm"),
        "--json",
        str(tmp_path / "m.json"),
        *common,
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "set test split (3 images)" in out and "valence" in out
    assert "collected-for category" in out and "balanced accuracy" in out
    assert (tmp_path / "cm" / "confusion_set.png").stat().st_size > 1000
    assert (tmp_path / "cm" / "confusion_set_category.png").is_file()
    report = json.loads((tmp_path / "cm" / "classes_set.json").read_text())
    assert set(report) == {"categorical", "category"}
    assert sum(c["support"] for c in report["category"]["per_class"].values()) == 3
    assert json.loads((tmp_path / "m.json").read_text())["set"]["n"] == 3
    argv = ["evaluate", str(model), "--reachability", "--steps", "2", "--restarts", "1"]
    argv += ["--size", "32", "--device", "cpu", "--report", str(tmp_path / "reach"), *common]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "reachable outputs" in out and "cppn" in out and "valence" in out
    rows = (tmp_path / "reach" / "reachability.csv").read_text().splitlines()
    assert rows[0] == "output,direction,pixels,cppn" and len(rows) == 1 + 3 + 4
    assert (tmp_path / "reach" / "reachability.png").stat().st_size > 1000
    argv = [
        "classify",
        str(tmp_path / "0.png"),
        "--model",
        str(model),
        "--json",
        "--size",
        "32",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    scored = json.loads(capsys.readouterr().out)
    assert set(scored) == {"image", "awe", "fear", "joy", "valence", "arousal"}


def test_bad_checkpoint_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_text("garbage")
    assert main(["classify", str(tmp_path / "x.png"), "--model", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model.pt is not a readable model checkpoint" in err


@pytest.mark.parametrize("command", ["train", "evaluate", "classify", "compare-representations"])
def test_help_is_complete(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "--dataset" in capsys.readouterr().out or command == "classify"
