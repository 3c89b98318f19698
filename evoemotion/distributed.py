"""Evaluation spread over a Dask cluster: shards of genomes out, outputs back in order.

The driver process keeps the search (archive, emitters, novelty state, random
generators); only evaluation moves. :class:`DistributedEvaluator` has the interface of
:class:`~evoemotion.pipeline.Evaluator` (``genotype``, ``evaluate(genomes) -> Outputs``):
it cuts each batch into a few shards of whole render/score chunks (never one task per
image), sends the genomes in their compact serialised form
(:meth:`~evoemotion.genotypes.Genotype.to_dict`), and joins the shards' outputs in batch
order.

Each worker builds its own :class:`~evoemotion.pipeline.Evaluator` once, on its first
shard, from a :class:`WorkerRecipe` that a worker plugin (:class:`EvaluatorPlugin`) holds:
the run config, the genotype, the image features and the classifiers' sources and
identity hashes (the weights are loaded on the worker from the same path, or the bundled
default, and must have the recorded hash). A worker uses its own GPU when it has one
(:func:`worker_device`).

Results do not depend on the number of workers: shards are whole chunks of the
evaluator's ``chunk_size``, so every forward pass sees the same images in the same batch
as in one process, and a worker scoring on the CPU uses the driver's torch thread count
(CPU kernels round differently with another count). Bit-identical archives also need the
same kind of device and CPU on the driver and the workers. Failures:

- a worker that dies mid-batch: the scheduler re-runs its shard elsewhere (a task is
  given up after ``distributed.scheduler.allowed-failures`` worker deaths); a shard that
  raises is retried :data:`TASK_RETRIES` times;
- a lost scheduler: the current batch is finished by the driver's own evaluator, the stop
  event is set so the run loop checkpoints and returns, and :attr:`DistributedEvaluator.lost`
  says what happened.

Importing this module imports ``dask.distributed``; the command line imports it only for
``--workers`` / ``--scheduler``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import signal
import threading
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import CancelledError
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dask
from distributed import Client, LocalCluster, WorkerPlugin, get_worker
from distributed.scheduler import KilledWorker

from evoemotion import __version__
from evoemotion.errors import ConfigError, EvoEmotionError
from evoemotion.pipeline import as_genome_list
from evoemotion.scoring import Outputs

if TYPE_CHECKING:
    from distributed import Worker

    from evoemotion.experiment import Run, RunConfig
    from evoemotion.genotypes import Genotype
    from evoemotion.pipeline import Evaluator, EvaluatorLike, ImageFeature

#: Times a shard that raised is resubmitted before its error reaches the driver.
TASK_RETRIES = 2

#: Seconds the client waits to (re)connect to a scheduler before giving up.
CONNECT_TIMEOUT = 30.0

#: Dask setting that gives worker processes a fixed malloc trim threshold, which also
#: turns off glibc's adaptive mmap threshold: every large torch buffer is then mmapped
#: and unmapped anew, and CPU scoring runs about twice as slow. Local clusters unset it.
NANNY_MALLOC_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"

#: Where a local scheduler serves its HTTP endpoints: any free loopback port (not 8787,
#: which a user's own Dask dashboard may hold).
LOOPBACK_ANY = "127.0.0.1:0"

#: What ``--scheduler`` accepts: ``tcp://HOST:PORT`` or ``tls://HOST:PORT``.
SCHEDULER_ADDRESS = re.compile(r"^(tcp|tls)://\S+:\d+$")


def shard_bounds(n: int, chunk_size: int, shards: int) -> list[tuple[int, int]]:
    """Cut a batch into at most ``shards`` consecutive runs of whole chunks.

    Args:
        n: Genomes in the batch.
        chunk_size: Genomes per render/score chunk; every shard but the last holds a
            multiple of it, so workers score the same forward batches as one process.
        shards: The most shards wanted (e.g. the number of worker threads).

    Returns:
        ``(start, stop)`` of each shard, in order, covering ``range(n)``; no shard is
        empty, and a batch of no genomes gives no shard.

    Raises:
        ConfigError: ``chunk_size`` or ``shards`` is not positive.
    """
    if chunk_size < 1 or shards < 1:
        raise ConfigError(f"chunk size and shards must be positive, got {chunk_size}, {shards}")
    chunks = -(-n // chunk_size)
    shards = min(shards, chunks)
    bounds, start = [], 0
    for index in range(shards):
        stop = min(n, start + chunk_size * (chunks // shards + (index < chunks % shards)))
        bounds.append((start, stop))
        start = stop
    return bounds


def worker_device(requested: str, worker_name: Any, cuda_devices: int) -> str:
    """Pick the scoring device of one worker.

    ``cpu`` stays on the CPU. ``auto`` and any ``cuda`` request mean "this worker's GPU":
    the driver's GPU index means nothing on another node, so a worker named ``i`` (local
    clusters) or ``NAME-i`` (``dask worker --nworkers G --name NAME``) takes GPU
    ``i mod G``; any other worker takes its first visible GPU (one worker per GPU with
    ``CUDA_VISIBLE_DEVICES``). Without a GPU, ``auto`` falls back to the CPU.

    Args:
        requested: The run's device option (``auto``, ``cpu``, ``cuda``, ``cuda:i``).
        worker_name: The Dask worker's name.
        cuda_devices: Number of CUDA devices the worker sees.

    Returns:
        A device name for :class:`~evoemotion.scoring.Scorer`.
    """
    if requested == "cpu" or (requested == "auto" and cuda_devices == 0):
        return "cpu"
    if cuda_devices == 0:
        return requested
    match = re.fullmatch(r"(?:.*-)?(\d+)", str(worker_name))
    index = int(match.group(1)) if match else 0
    return f"cuda:{index % cuda_devices}"


@dataclass(frozen=True)
class WorkerRecipe:
    """Everything a worker needs to build the run's evaluator, without model weights.

    Attributes:
        config: The run config (device, precision, crops, chunk, render and score sizes).
        genotype: The genotype (pickles as its preset).
        features: Image features of the objective (name -> module-level function).
        classifiers: ``{"source", "identity"}`` of every classifier, as in ``config.json``.
        torch_threads: The driver's torch intra-op threads; a worker scoring on the CPU
            uses as many, since CPU kernels round differently with another thread count.
        version: The driver's evoemotion version; workers must run the same.
    """

    config: RunConfig
    genotype: Genotype
    features: Mapping[str, ImageFeature]
    classifiers: tuple[Mapping[str, str], ...]
    torch_threads: int
    version: str = __version__

    @classmethod
    def from_run(cls, run: Run) -> WorkerRecipe:
        """Describe the evaluator of a started or resumed run.

        Args:
            run: The run (:func:`~evoemotion.experiment.start_run` or ``resume_run``).

        Returns:
            The recipe.
        """
        import torch

        records = tuple(
            {"source": r["source"], "identity": r["identity"]}
            for r in run.folder.config["classifiers"]
        )
        return cls(
            run.config,
            run.state.genotype,
            dict(run.state.spec.features),
            records,
            torch.get_num_threads(),
        )

    def build(self, device: str) -> Evaluator:
        """Load the classifiers, check their hashes and build the evaluator.

        Args:
            device: Scoring device of this worker (see :func:`worker_device`).

        Returns:
            The evaluator.

        Raises:
            ConfigError: The worker runs another evoemotion version.
            CheckpointError: A classifier is missing here or its hash differs.
        """
        from evoemotion.experiment import build_evaluator, check_classifiers, load_classifiers

        if self.version != __version__:
            raise ConfigError(
                f"the driver runs evoemotion {self.version}, this worker {__version__}"
            )
        models = load_classifiers([r["source"] for r in self.classifiers])
        check_classifiers(self.classifiers, models)
        config = dataclasses.replace(self.config, device=device)
        return build_evaluator(config, self.genotype, self.features, models)


class EvaluatorPlugin(WorkerPlugin):
    """Holds a worker's evaluator: built on the first shard, kept for the next ones.

    Building happens in the task thread (not in the worker's event loop), once per
    worker process; a worker restarted after a crash builds it again.

    Args:
        recipe: How to build the evaluator.
    """

    def __init__(self, recipe: WorkerRecipe) -> None:
        self.recipe = recipe
        self._evaluator: Evaluator | None = None

    def setup(self, worker: Worker) -> None:
        """Remember the worker; the evaluator is built lazily by :meth:`evaluator`."""
        self._worker = worker
        self._lock = threading.Lock()

    def evaluator(self) -> Evaluator:
        """Return this worker's evaluator, building it on first use.

        A worker scoring on the CPU sets the recipe's torch thread count on every call:
        with OpenMP the count belongs to the calling thread.

        Returns:
            The evaluator.

        Raises:
            EvoEmotionError: Building failed; the message names the worker.
        """
        import torch

        with self._lock:
            if self._evaluator is None:
                self._device = worker_device(
                    self.recipe.config.device, self._worker.name, torch.cuda.device_count()
                )
                try:
                    self._evaluator = self.recipe.build(self._device)
                except EvoEmotionError as err:
                    raise type(err)(f"Dask worker {self._worker.address}: {err}") from err
            if self._device == "cpu":
                torch.set_num_threads(self.recipe.torch_threads)
            return self._evaluator

    def teardown(self, worker: Worker) -> None:
        """Stop the evaluator's render thread and drop the models."""
        if self._evaluator is not None:
            self._evaluator.close()
            self._evaluator = None


def evaluate_shard(plugin: str, genomes: list[dict[str, Any]], keep_images: bool) -> Outputs:
    """Task run on a worker: rebuild the genomes and evaluate them.

    Args:
        plugin: Name under which the :class:`EvaluatorPlugin` was registered.
        genomes: The shard's genomes as :meth:`Genotype.to_dict` dicts.
        keep_images: Return the rendered images too.

    Returns:
        The shard's outputs, in order.

    Raises:
        GenomeError: A genome dict does not fit the genotype.
    """
    evaluator = get_worker().plugins[plugin].evaluator()
    decoded = [evaluator.genotype.from_dict(d) for d in genomes]
    return evaluator.evaluate(decoded, keep_images=keep_images)


class DistributedEvaluator:
    """Evaluates batches on a Dask cluster; a drop-in for the run's evaluator.

    Registers an :class:`EvaluatorPlugin` on the cluster (also on workers that join
    later) and unregisters it on :meth:`close`.

    Args:
        client: A connected Dask client.
        recipe: How workers build their evaluator.
        fallback: The driver's own evaluator (same recipe): it finishes the batch in
            flight when the scheduler is lost.
        stop: Event set when the scheduler is lost, so the run loop checkpoints and
            returns (the ``stop`` of :func:`~evoemotion.runs.run_iterations`).

    Attributes:
        lost: ``None``, or a one-line description of the lost scheduler.
    """

    def __init__(
        self,
        client: Client,
        recipe: WorkerRecipe,
        *,
        fallback: EvaluatorLike,
        stop: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.recipe = recipe
        self.genotype = recipe.genotype
        self.fallback = fallback
        self.chunk_size = recipe.config.chunk_size
        self.stop = stop
        self.lost: str | None = None
        self._address = client.scheduler.address
        self.plugin = f"evoemotion-evaluator-{uuid.uuid4().hex[:12]}"
        client.register_plugin(EvaluatorPlugin(recipe), name=self.plugin)

    def evaluate(self, genomes: Any, *, keep_images: bool = False) -> Outputs:
        """Render and score genomes on the cluster.

        Args:
            genomes: A sequence of genomes or an ``(n, solution_dim)`` array.
            keep_images: Attach the rendered images to the outputs.

        Returns:
            :class:`~evoemotion.scoring.Outputs` in the order of ``genomes``, equal to
            what the driver's evaluator returns.

        Raises:
            EvoEmotionError: Dask gave up on a shard whose workers kept dying.
            GenomeError: A genome cannot be rebuilt on the workers.
        """
        genomes = as_genome_list(genomes)
        if self.lost is None and self.client.status in ("closing", "closed"):
            self._lose(f"the Dask client is {self.client.status}")
        if self.lost is not None or not len(genomes):
            return self.fallback.evaluate(genomes, keep_images=keep_images)
        encoded = [self.genotype.to_dict(g) for g in genomes]
        try:
            threads = max(1, sum(self.client.nthreads().values()))
            futures = [
                self.client.submit(
                    evaluate_shard,
                    self.plugin,
                    encoded[start:stop],
                    keep_images,
                    key=f"evoemotion-shard-{start}-{uuid.uuid4().hex}",
                    retries=TASK_RETRIES,
                    pure=False,
                )
                for start, stop in shard_bounds(len(encoded), self.chunk_size, threads)
            ]
            return Outputs.concatenate(self.client.gather(futures))
        except KilledWorker as err:
            raise EvoEmotionError(
                f"Dask gave up on a shard of genomes after the workers running it died "
                f"repeatedly ({err}); see the worker logs (out of memory?)"
            ) from err
        except (CancelledError, OSError, TimeoutError) as err:
            if self.client.status == "running":
                raise
            cancelled = isinstance(err, CancelledError)
            self._lose(
                "connection lost"
                if cancelled
                else (str(err).splitlines() or [type(err).__name__])[0]
            )
        return self.fallback.evaluate(genomes, keep_images=keep_images)

    def _lose(self, reason: str) -> None:
        """Record the lost scheduler and ask the run loop to stop."""
        self.lost = f"lost the Dask scheduler at {self._address} ({reason[:120]})"
        if self.stop is not None:
            self.stop.set()

    def close(self) -> None:
        """Unregister the worker plugin (freeing the workers' models)."""
        if self.lost is None:
            with suppress(Exception):
                self.client.unregister_worker_plugin(self.plugin)


def check_scheduler_address(address: str) -> str:
    """Validate a ``--scheduler`` value.

    Args:
        address: ``tcp://HOST:PORT`` (or ``tls://``).

    Returns:
        The address.

    Raises:
        ConfigError: It does not look like one.
    """
    if not SCHEDULER_ADDRESS.match(address):
        raise ConfigError(f"a scheduler address looks like tcp://HOST:PORT, not {address!r}")
    return address


def dask_setup(worker: Worker) -> None:
    """Dask preload hook of local workers: leave Ctrl-C to the driver.

    Local worker processes share the terminal's process group, so Ctrl-C reaches them
    too; they ignore it, and the driver finishes its iteration, checkpoints and shuts
    them down.

    Args:
        worker: The starting worker (unused).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def dask_client(
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    timeout: float = CONNECT_TIMEOUT,
) -> Iterator[Client]:
    """Start a local cluster of worker processes, or join a running scheduler.

    Give exactly one of ``workers`` and ``scheduler``. A local cluster listens on
    127.0.0.1 only, runs ``workers`` processes of one thread each (preloading this module,
    see :func:`dask_setup`, and with glibc's default malloc tuning, see
    :data:`NANNY_MALLOC_TRIM`) and no dashboard; it is shut down on exit. Joining a
    scheduler leaves that cluster running on exit. Dask's own log messages are silenced
    meanwhile (below CRITICAL): failures reach the caller as errors, not log lines.

    Args:
        workers: Number of local worker processes.
        scheduler: Address of a running scheduler, ``tcp://HOST:PORT``.
        timeout: Seconds to wait for the scheduler when connecting or reconnecting.

    Yields:
        The connected client.

    Raises:
        ConfigError: Both or neither option, fewer than one worker, a bad address.
        EvoEmotionError: The scheduler cannot be reached.
    """
    if (workers is None) == (scheduler is None):
        raise ConfigError("give exactly one of `workers` and `scheduler`")
    if scheduler is not None:
        check_scheduler_address(scheduler)
    elif workers < 1:
        raise ConfigError(f"`workers` must be at least 1, got {workers}")
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    cluster = None
    try:
        if scheduler is None:
            with dask.config.set({NANNY_MALLOC_TRIM: None}):
                cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=logging.CRITICAL,
                    preload=[__name__],
                    scheduler_kwargs={"dashboard_address": LOOPBACK_ANY},
                )
        try:
            client = Client(cluster or scheduler, timeout=timeout)
        except (OSError, TimeoutError) as err:
            raise EvoEmotionError(
                f"cannot reach the Dask scheduler at {scheduler} ({err})"
            ) from err
        try:
            yield client
        finally:
            with suppress(Exception):
                client.close(timeout=timeout)
    finally:
        if cluster is not None:
            with suppress(Exception):
                cluster.close(timeout=timeout)
        logger.setLevel(level)


@contextmanager
def cluster_evaluator(
    run: Run,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    stop: threading.Event | None = None,
) -> Iterator[DistributedEvaluator]:
    """Evaluate a run's batches on a local cluster or a running one.

    Args:
        run: The run (its evaluator becomes the fallback).
        workers: Number of local worker processes (``--workers``).
        scheduler: Address of a running scheduler (``--scheduler``).
        stop: The run loop's stop event (set when the scheduler is lost).

    Yields:
        The distributed evaluator.

    Raises:
        ConfigError: Bad cluster options.
        EvoEmotionError: The scheduler cannot be reached.
    """
    with dask_client(workers=workers, scheduler=scheduler) as client:
        evaluator = DistributedEvaluator(
            client, WorkerRecipe.from_run(run), fallback=run.evaluator, stop=stop
        )
        try:
            yield evaluator
        finally:
            evaluator.close()


__all__ = [
    "DistributedEvaluator",
    "EvaluatorPlugin",
    "WorkerRecipe",
    "cluster_evaluator",
    "dask_client",
    "shard_bounds",
    "worker_device",
]
