"""Bad input and failing writes on the command line: one clear line, never a traceback."""

from __future__ import annotations

import csv
import errno
import json
import os

import numpy as np
import pytest
from PIL import Image

from evoemotion.cli import main


@pytest.mark.parametrize("content, why", [
    ("image", "binary data"),
    (b"genome: yes\n", "not JSON"),
    ("[1, 2, 3]", "must hold a JSON object, got a JSON list"),
    ({"kind": "cppn", "genotype": "cppn", "vector": [1.0, 2.0]}, "vector"),
    ({"kind": "cppn", "genotype": "cppn", "vector": [[1.0], "x"]}, "vector"),
    ({"kind": "sims", "genotype": "sims", "trees": "x + y"}, "trees"),
    ({"kind": "sims", "genotype": "sims", "trees": [1, 2, 3]}, "genome"),
    ({"kind": "cppn", "genotype": "nonexistent-preset", "vector": []}, "nonexistent-preset"),
    ({"kind": "cppn", "preset": ["not", "a", "preset"]}, "preset"),
])
def test_a_bad_genome_file_gives_one_line_naming_it(tmp_path, capsys, content, why):
    path = tmp_path / "genome.json"
    if content == "image":
        path = tmp_path / "some-image.png"
        Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    assert main(["render", str(path), "--size", "16", "-o", str(tmp_path / "out.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and why in err, err


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    import torch

    from evoemotion.emotion import build_model, save_model

    torch.manual_seed(0)
    model = build_model("mobilenet_v3_small", ["categorical", "vad"], ["fear", "joy"],
                        weights="none")
    return save_model(model, tmp_path_factory.mktemp("model") / "tiny.pt")


def test_a_full_disk_while_checkpointing_gives_one_line_and_the_run_resumes(
        classifier, tmp_path, monkeypatch, capsys):
    import evoemotion.atomic as atomic

    real, written = atomic._write_all, []

    def full_disk(fd: int, data: bytes) -> None:
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if name.startswith(".checkpoint.pkl."):
            written.append(name)
            if len(written) == 3:          # iteration 0 and 1 fit, iteration 2 does not
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, data)

    monkeypatch.setattr(atomic, "_write_all", full_disk)
    out = tmp_path / "run"
    common = ["--classifier", str(classifier), "--batch-size", "4", "--chunk-size", "4",
              "--render-size", "16", "--score-size", "32", "--cells", "4", "--device", "cpu",
              "--emitters", "1"]
    assert main(["run", "--out", str(out), "--iterations", "4", "--checkpoint-every", "1",
                 *common]) == 2
    lines = capsys.readouterr().err.strip().split("\n")   # the progress bar is closed first
    (err,) = [line for line in lines if "error" in line]
    assert err == lines[-1] and err.startswith("evoemotion run: error: ")
    assert f"cannot write {out / 'checkpoint.pkl'}: No space left on device" in err
    assert "the last checkpoint (iteration 1) is intact" in err
    assert err.endswith(f"evoemotion resume {out}")
    assert not [p for p in out.iterdir() if p.name.startswith(".checkpoint.pkl.")]
    monkeypatch.undo()
    assert main(["resume", str(out), "--iterations", "1"]) == 0
    assert "already at iteration 1 (asked for 1); nothing was run" in capsys.readouterr().out
    assert len((out / "metrics.csv").read_text().splitlines()) == 2   # header + iteration 1
    assert main(["resume", str(out), "--iterations", "2"]) == 0
    with open(out / "metrics.csv") as fh:
        assert [int(r["iteration"]) for r in csv.DictReader(fh)] == [1, 2]


def test_a_bad_reachability_genotype_fails_before_any_ascent(classifier, monkeypatch, capsys):
    import evoemotion.emotion.reachability as reachability

    def no_ascent(*args, **kwargs):
        raise AssertionError("the pixel ascent ran before the genotype was checked")

    monkeypatch.setattr(reachability, "pixel_ascent", no_ascent)
    argv = ["evaluate", str(classifier), "--reachability", "--genotype", "no-such-preset"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no-such-preset" in err, err
