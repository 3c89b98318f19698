"""Run folders that are safe to share and to use from two terminals.

Views read only the data snapshot; checkpoints are signed and ``resume`` refuses foreign
ones without ``--trust``; one writer per folder; ``--continue-from`` reads a snapshot.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from evoemotion.cli import main
from evoemotion.emotion import build_model, save_model
from evoemotion.errors import RunBusyError, UntrustedCheckpointError
from evoemotion.experiment import RunConfig, resume_run, start_run
from evoemotion.runs import RunFolder, run_iterations
from evoemotion.signing import KEY_FILE_ENV, SigningKey, load_key
from evoemotion.snapshot import ArchiveSnapshot

CLASSES = ["anger", "fear", "joy"]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", ["categorical", "vad"], CLASSES,
                        weights="imagenet")
    with torch.no_grad():
        for p in model.heads.parameters():
            p.mul_(3.0)
    return save_model(model, tmp_path_factory.mktemp("model") / "tiny.pt")


def tiny_config(classifier, **changes) -> RunConfig:
    settings = {"classifiers": [str(classifier)], "iterations": 2, "batch_size": 16,
                "chunk_size": 16, "render_size": 32, "score_size": 64, "cells": 8,
                "device": "cpu", "checkpoint_every": 1, "seed": 5,
                "options": {"emitters": 2}, **changes}
    return RunConfig(**settings)


def finished_run(config, folder: Path) -> Path:
    with start_run(config, folder) as run:
        run_iterations(run.folder, run.state, run.evaluator, iterations=config.iterations)
    return folder


def folder_state(folder: Path, *, lock: bool = True) -> dict[str, tuple[str, int]]:
    """Content hash and mtime of every file (``writer.lock`` too unless ``lock=False``)."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                         p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))
            if p.is_file() and (lock or p.name != "writer.lock")}


class Touch:
    """A hostile pickle's harmless payload: unpickling it creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def plant_hostile_checkpoint(folder: Path, marker: Path, *, signed_with: SigningKey | None):
    """Replace the checkpoint by a pickle that touches ``marker``, header and sha256
    matching (version 1, unsigned) or signed with someone else's key (version 2)."""
    data = pickle.dumps({"state": Touch(marker)})
    sha = hashlib.sha256(data).hexdigest()
    if signed_with is None:
        header = f"EVOEMOTION-RUN-CHECKPOINT 1 {sha}".encode()
    else:
        fields = f"sha256={sha} key={signed_with.fingerprint} by=mallory@elsewhere".encode()
        hmac = signed_with.sign(fields + b"\n" + data)
        header = b"EVOEMOTION-RUN-CHECKPOINT 2 " + fields + b" hmac=" + hmac.encode()
    (folder / "checkpoint.pkl").write_bytes(header + b"\n" + data)


def test_the_snapshot_round_trips_every_elite_exactly(classifier, tmp_path):
    for genotype, archive, cells in [("cppn", "categorical", 8), ("sims", "va", 6)]:
        config = tiny_config(classifier, genotype=genotype, archive=archive, cells=cells,
                             options={})
        with start_run(config, tmp_path / genotype) as run:
            run_iterations(run.folder, run.state, run.evaluator, iterations=2)
            data = run.state.archive.data()
            snapshot = ArchiveSnapshot.read(run.folder.snapshot_path)
        order = np.argsort(data["index"])
        assert len(snapshot) == len(data["index"]) > 1 and snapshot.iteration == 2
        for name, column in [("cells", "index"), ("objective", "objective"),
                             ("measures", "measures"), ("outputs", "outputs")]:
            np.testing.assert_array_equal(getattr(snapshot, name), data[column][order])
        genotype_ = run.state.genotype
        assert ([genotype_.to_dict(g) for g in snapshot.solutions]
                == [genotype_.to_dict(g) for g in data["solution"][order]])
        assert snapshot.spec.to_dict() == run.state.spec.to_dict()
        assert snapshot.genotype.preset == genotype_.preset
        rebuilt = snapshot.to_archive().data()
        np.testing.assert_array_equal(np.sort(rebuilt["index"]), snapshot.cells)
        with np.load(run.folder.snapshot_path, allow_pickle=False) as npz:
            assert all(npz[name].dtype != object for name in npz.files)


def test_no_view_runs_a_hostile_pickle_and_resume_refuses_it(classifier, tmp_path, capsys):
    folder = finished_run(tiny_config(classifier), tmp_path / "shared")
    marker = tmp_path / "pwned"
    stranger = SigningKey(b"\x07" * 32, tmp_path / "stranger.key")
    for signed_with in (None, stranger):
        plant_hostile_checkpoint(folder, marker, signed_with=signed_with)
        views = [["plot", str(folder)], ["gallery", str(folder), "--size", "32"],
                 ["analyze", str(folder), "--size", "32"],
                 ["render", str(folder), "--top", "1", "--size", "32"]]
        for argv in views:
            assert main(argv) == 0, argv
        assert not marker.exists()
        capsys.readouterr()
        before = folder_state(folder, lock=False)
        assert main(["resume", str(folder)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "--trust" in err and "pickle" in err
        assert ("is not signed" if signed_with is None else stranger.fingerprint) in err
        assert main(["snapshot", str(folder)]) == 2
        assert "--trust" in capsys.readouterr().err
        assert not marker.exists() and folder_state(folder, lock=False) == before
    # An old folder (no snapshot): one line saying how to make one, still no pickle opened.
    (folder / "archive.npz").unlink()
    assert main(["plot", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"evoemotion snapshot {folder} --trust" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()


def test_trust_loads_a_checkpoint_signed_with_another_key(classifier, tmp_path, capsys):
    other = SigningKey(b"\x01" * 32, tmp_path / "colleague.key")
    config = tiny_config(classifier, iterations=1)
    with start_run(config, tmp_path / "theirs", key=other) as run:
        run_iterations(run.folder, run.state, run.evaluator, iterations=1)
        expected = run.state.archive.data("objective")
    with pytest.raises(UntrustedCheckpointError, match=other.fingerprint):
        resume_run(tmp_path / "theirs")
    with resume_run(tmp_path / "theirs", trust=True) as resumed:
        assert resumed.state.iteration == 1
        np.testing.assert_array_equal(resumed.state.archive.data("objective"), expected)
    (tmp_path / "theirs" / "archive.npz").unlink()
    assert main(["snapshot", str(tmp_path / "theirs"), "--trust"]) == 0
    assert len(ArchiveSnapshot.read(tmp_path / "theirs" / "archive.npz")) == len(expected)
    # Resuming re-signs with the user's own key: no --trust needed afterwards.
    assert main(["resume", str(tmp_path / "theirs"), "--iterations", "2", "--trust"]) == 0
    assert main(["resume", str(tmp_path / "theirs"), "--iterations", "3"]) == 0


def test_a_second_writer_is_refused_and_changes_nothing(classifier, tmp_path, capsys):
    folder = tmp_path / "busy"
    run = start_run(tiny_config(classifier), folder)
    run_iterations(run.folder, run.state, run.evaluator, iterations=1)
    before = folder_state(folder)
    assert main(["resume", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"run folder {folder} is being written by process {os.getpid()}" in err
    assert len(err.splitlines()) == 1
    with pytest.raises(RunBusyError):
        resume_run(folder)
    assert folder_state(folder) == before
    run.close()
    with resume_run(folder) as resumed:
        assert resumed.state.iteration == 1


def test_after_kill_9_the_folder_is_free_and_resumes(classifier, tmp_path, capsys):
    folder = tmp_path / "killed"
    command = [sys.executable, "-m", "evoemotion", "run", "--out", str(folder),
               "--classifier", str(classifier), "--iterations", "100000", "--batch-size", "4",
               "--chunk-size", "4", "--render-size", "16", "--score-size", "32",
               "--cells", "6", "--device", "cpu", "--checkpoint-every", "1",
               "--emitters", "1"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        metrics = folder / "metrics.csv"
        while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        assert main(["resume", str(folder)]) == 2
        assert f"process {child.pid}" in capsys.readouterr().err
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with resume_run(folder) as resumed:
        done = resumed.state.iteration
        assert done >= 1
        assert run_iterations(resumed.folder, resumed.state, resumed.evaluator,
                              iterations=done + 1)
    assert ArchiveSnapshot.read(folder / "archive.npz").iteration == done + 1


def test_continue_from_fills_the_archive_from_a_snapshot_only(classifier, tmp_path):
    source = finished_run(tiny_config(classifier), tmp_path / "source")
    snapshot = ArchiveSnapshot.read(source / "archive.npz")
    marker = tmp_path / "pwned"
    plant_hostile_checkpoint(source, marker, signed_with=None)
    config = tiny_config(classifier, seed=9, archive="va", cells=3, genotype="sims",
                         continue_from=str(source))
    archives = []
    for name in ("a", "b"):
        with start_run(config, tmp_path / name) as run:
            data = run.state.archive.data()
            np.testing.assert_array_equal(np.sort(data["index"]), snapshot.cells)
            assert run.state.iteration == 0 and run.state.genotype.name == "cppn"
            run_iterations(run.folder, run.state, run.evaluator, iterations=2)
            archives.append(run.state.archive.data())
    assert not marker.exists()
    for key in ("index", "objective", "measures", "solution"):
        np.testing.assert_array_equal(archives[0][key], archives[1][key])
    record = RunFolder(tmp_path / "a").config
    assert record["continued_from"]["folder"] == str(source.resolve())
    assert record["continued_from"]["elites"] == len(snapshot)
    assert record["run"]["archive"] == "categorical" and record["archive"]["cells"] == 8


def test_the_key_is_made_private_on_first_use_and_refused_when_open(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_FILE_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    key = load_key()
    assert key.path == tmp_path / "evoemotion" / "checkpoint.key"
    assert key.path.stat().st_mode & 0o777 == 0o600
    assert load_key().secret == key.secret and len(key.secret) == 32
    key.path.chmod(0o644)
    with pytest.raises(Exception, match="chmod 600"):
        load_key()
