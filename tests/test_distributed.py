"""Distributed evaluation on a loopback Dask cluster: same archive with 0, 1 or 2 workers,
a killed worker's shard re-run, a lost scheduler stopping the run with a checkpoint."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import suppress

import cloudpickle
import numpy as np
import pytest
import torch
from distributed import Client, LocalCluster, WorkerPlugin
from hypothesis import given, settings
from hypothesis import strategies as st

from evoemotion.cli import build_parser, main
from evoemotion.distributed import (
    LOOPBACK_ANY,
    DistributedEvaluator,
    WorkerRecipe,
    dask_client,
    shard_bounds,
    worker_device,
)
from evoemotion.emotion import build_model, save_model
from evoemotion.errors import CheckpointError, ConfigError, EvoEmotionError
from evoemotion.experiment import RunConfig, resume_run, start_run
from evoemotion.runs import RunFolder, run_iterations

CLASSES = ["anger", "fear", "joy"]

#: 20 genomes in chunks of 8: the shards hold 16 and 4 genomes, the last chunk is partial.
#: A fear x anger grid whose objective (aesthetic) is an image feature computed by workers.
CONFIG = {
    "archive": "measures",
    "measures": ["anger", "fear"],
    "cells": 20,
    "iterations": 3,
    "batch_size": 20,
    "chunk_size": 8,
    "render_size": 32,
    "score_size": 32,
    "device": "cpu",
    "checkpoint_every": 1,
    "seed": 5,
    "options": {"emitters": 2},
}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Score with one thread here and (via the recipe) on the workers, so that two workers
    do not run four OpenMP threads on the two cores of a CI machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    # An untrained ResNet-18 still gives outputs that vary from image to image.
    torch.manual_seed(0)
    model = build_model("resnet18", ["categorical", "va"], CLASSES, weights="none")
    return save_model(model, tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def config(classifier):
    return RunConfig(classifiers=[str(classifier)], **CONFIG)


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory):
    """The run done in this process, without Dask."""
    run = start_run(config, tmp_path_factory.mktemp("runs") / "local")
    run_iterations(run.folder, run.state, run.evaluator, iterations=config.iterations)
    return run


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2) as client:
        yield client


def archive_content(state):
    data = state.archive.data()
    order = np.argsort(data["index"])
    return [data[key][order] for key in ("index", "objective", "measures", "solution")]


def without_time(rows):
    return [{k: v for k, v in row.items() if k != "wall_time"} for row in rows]


def assert_same_run(state, reference_state):
    assert state.iteration == reference_state.iteration
    for a, b in zip(archive_content(state), archive_content(reference_state), strict=True):
        np.testing.assert_array_equal(a, b)
    assert without_time(state.metrics) == without_time(reference_state.metrics)


def assert_same_outputs(out, expected):
    assert out.names == expected.names
    for name in expected.names:
        np.testing.assert_array_equal(out[name], expected[name])


@settings(deadline=None)
@given(n=st.integers(0, 200), chunk=st.integers(1, 40), shards=st.integers(1, 12))
def test_shards_are_runs_of_whole_chunks_covering_the_batch_in_order(n, chunk, shards):
    bounds = shard_bounds(n, chunk, shards)
    assert [i for start, stop in bounds for i in range(start, stop)] == list(range(n))
    assert len(bounds) <= shards
    assert all(stop > start for start, stop in bounds)
    assert all((stop - start) % chunk == 0 for start, stop in bounds[:-1])
    sizes = [stop - start for start, stop in bounds[:-1]]
    assert not sizes or max(sizes) - min(sizes) <= chunk


def test_each_worker_takes_its_own_gpu_and_cpu_stays_cpu():
    assert worker_device("cpu", 0, 4) == "cpu"
    assert worker_device("auto", 1, 0) == "cpu"
    assert worker_device("auto", 3, 2) == "cuda:1"
    assert worker_device("cuda:0", "node7-2", 4) == "cuda:2"
    assert worker_device("cuda", "tcp://10.0.0.5:40123", 1) == "cuda:0"
    assert worker_device("cuda", 0, 0) == "cuda"


def test_bad_cluster_options_are_refused_before_anything_starts():
    for options, fragment in [
        ({}, "exactly one"),
        ({"workers": 2, "scheduler": "tcp://a:1"}, "exactly one"),
        ({"workers": 0}, "`workers` must be at least 1"),
        ({"scheduler": "127.0.0.1"}, "tcp://HOST:PORT, not"),
    ]:
        with pytest.raises(ConfigError, match=fragment), dask_client(**options):
            pass
    with (
        pytest.raises(EvoEmotionError, match="cannot reach the Dask scheduler at tcp://127"),
        dask_client(scheduler="tcp://127.0.0.1:9", timeout=1),
    ):
        pass
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--workers", "2", "--scheduler", "tcp://a:1"])


def test_runs_without_cluster_options_do_not_import_dask():
    code = (
        "import sys; from evoemotion.cli import build_parser; "
        "build_parser().parse_args(['run']); "
        "import evoemotion.cli.run, evoemotion.experiment, evoemotion.runs; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_cli_runs_on_local_workers_and_on_a_scheduler_give_the_same_archive(
    config, reference, client, tmp_path
):
    for name, options in [
        ("one", ["--workers", "1"]),
        ("two", ["--scheduler", client.scheduler.address]),
    ]:
        start_run(config, tmp_path / name).close()
        assert main(["resume", str(tmp_path / name), "--no-export", *options]) == 0
        assert_same_run(RunFolder.open(tmp_path / name).load_checkpoint(), reference.state)


class KillOnce(WorkerPlugin):
    """Kills the first worker that starts a shard (SIGKILL: no clean-up, like an OOM kill)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def transition(self, key, start, finish, **kwargs):
        if finish != "executing" or not str(key).startswith("evoemotion-shard"):
            return
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_mid_batch_has_its_shard_rerun(reference, client, tmp_path):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    genomes = reference.state.genotype.random(np.random.default_rng(1), 20)
    evaluator = DistributedEvaluator(
        client, WorkerRecipe.from_run(reference), fallback=reference.evaluator
    )
    before = set(client.run(os.getpid).values())
    client.register_plugin(KillOnce(str(tmp_path / "killed")), name="kill-once")
    try:
        out = evaluator.evaluate(genomes, keep_images=True)
    finally:
        client.unregister_worker_plugin("kill-once")
        evaluator.close()
    assert (tmp_path / "killed").exists()
    assert_same_outputs(out, reference.evaluator.evaluate(genomes))
    np.testing.assert_array_equal(out.images, reference.evaluator.render(genomes))
    client.wait_for_workers(2, timeout=60)
    assert len(before - _worker_pids(client, expect=2)) == 1


def _worker_pids(client, *, expect: int, timeout: float = 60.0) -> set[int]:
    """The workers' PIDs once ``expect`` live workers answer (a killed worker can stay
    listed by the scheduler for a moment after its replacement registers)."""
    deadline = time.monotonic() + timeout
    while True:
        answers = client.run(os.getpid, on_error="return").values()
        pids = {pid for pid in answers if isinstance(pid, int)}
        if len(pids) == expect or time.monotonic() > deadline:
            return pids
        time.sleep(0.5)


def test_a_worker_recipe_refuses_a_classifier_that_changed(reference):
    recipe = WorkerRecipe.from_run(reference)
    assert recipe.torch_threads == torch.get_num_threads()
    changed = dataclasses.replace(
        recipe, classifiers=({**recipe.classifiers[0], "identity": "0" * 64},)
    )
    with pytest.raises(CheckpointError, match="has changed since the run started"):
        changed.build("cpu")


def test_a_lost_scheduler_stops_the_run_with_a_checkpoint(config, reference, tmp_path):
    run = start_run(config, tmp_path / "lost")
    stop = threading.Event()
    cluster = LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": LOOPBACK_ANY},
    )
    try:
        with Client(cluster, timeout=2) as client:
            evaluator = DistributedEvaluator(
                client, WorkerRecipe.from_run(run), fallback=run.evaluator, stop=stop
            )

            def lose_the_scheduler(row):
                if row["iteration"] == 1:
                    for worker in list(cluster.workers.values()):
                        client.sync(worker.close)
                    client.sync(cluster.scheduler.close)

            finished = run_iterations(
                run.folder,
                run.state,
                evaluator,
                iterations=3,
                stop=stop,
                callback=lose_the_scheduler,
            )
    finally:
        with suppress(TimeoutError):  # its scheduler is gone: closing cannot complete
            cluster.close(timeout=1)
    assert not finished and stop.is_set()
    assert evaluator.lost.startswith(f"lost the Dask scheduler at {cluster.scheduler_address}")
    run.close()
    resumed = resume_run(tmp_path / "lost")
    assert resumed.state.iteration == 2
    run_iterations(resumed.folder, resumed.state, resumed.evaluator, iterations=3)
    assert_same_run(resumed.state, reference.state)
