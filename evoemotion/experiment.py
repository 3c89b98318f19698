"""Assemble a run from its configuration: start a new run folder or resume one.

:class:`RunConfig` is every option of ``evoemotion run`` as plain data; it goes into
``config.json`` verbatim. :func:`start_run` loads the genotype and classifiers, builds the
scorer, archive spec, run state and evaluator, and creates the run folder;
:func:`resume_run` rebuilds the same from a run folder, checking that the classifiers
are the ones the run was started with. Both return a :class:`Run`; stepping it is
:func:`evoemotion.runs.run_iterations`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import platform
import random
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evoemotion import __version__
from evoemotion.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from evoemotion.archives import ArchiveSpec
    from evoemotion.emotion import EmotionModel
    from evoemotion.genotypes import Genotype
    from evoemotion.pipeline import Evaluator, ImageFeature
    from evoemotion.runs import RunFolder
    from evoemotion.search import SearchState
    from evoemotion.signing import SigningKey
    from evoemotion.snapshot import ArchiveSnapshot

#: Distributions whose versions are recorded in ``config.json``.
RECORDED_PACKAGES = ("numpy", "numba", "torch", "torchvision", "ribs", "deap", "pillow")


@dataclass
class RunConfig:
    """Every option of a run (see ``evoemotion run --help`` for their meaning).

    Attributes:
        genotype: Genotype preset name or TOML path.
        archive: Archive kind (:data:`~evoemotion.archives.ARCHIVE_KINDS`).
        algorithm: Search algorithm (:data:`~evoemotion.search.ALGORITHMS`).
        objective: Objective name, or ``None`` for the archive's default.
        measures: The two outputs of a ``measures`` archive.
        cells: CVT cells or grid bins per axis, or ``None`` for the default.
        classifiers: Classifier sources (``"default"`` or checkpoint paths); several
            make an ensemble.
        device: Scoring device (``auto``, ``cpu``, ``cuda``, ``cuda:i``).
        precision: Scoring precision (``auto``, ``fp32``, ``bf16``).
        crops: Deterministic crops averaged per image.
        iterations: Iterations of the run.
        batch_size: Genomes evaluated per iteration.
        chunk_size: Genomes rendered / scored at a time; rendering of the next chunk
            overlaps scoring of this one.
        render_size: Side of rendered images in pixels.
        score_size: Side the classifier sees, or ``None`` for its native input size.
        seed: Seed of everything random.
        checkpoint_every: Checkpoint period in iterations.
        export_size: Side of the exported elite PNGs.
        options: Algorithm-specific options (e.g. ``emitter``, ``sigma``).
        continue_from: A run folder whose archive snapshot fills the new run's archive
            (its genotype and archive spec are used); ``None`` starts empty.
        renderer: ``auto``, ``numba`` or ``torch`` (see :class:`~evoemotion.pipeline.Evaluator`).
    """

    genotype: str = "cppn"
    archive: str = "categorical"
    algorithm: str = "map-elites"
    objective: str | None = None
    measures: list[str] | None = None
    cells: int | None = None
    classifiers: list[str] = field(default_factory=lambda: ["default"])
    device: str = "auto"
    precision: str = "auto"
    crops: int = 1
    iterations: int = 150
    batch_size: int = 64
    chunk_size: int = 16
    render_size: int = 64
    score_size: int | None = 128
    seed: int = 0
    checkpoint_every: int = 10
    export_size: int = 256
    options: dict[str, Any] = field(default_factory=dict)
    continue_from: str | None = None
    renderer: str = "auto"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Rebuild from :func:`dataclasses.asdict` output (``config.json``'s ``run``).

        Args:
            data: Field -> value.

        Returns:
            The config.

        Raises:
            ConfigError: A field is unknown.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"run config has unknown field(s) {', '.join(unknown)}")
        return cls(**data)


@dataclass
class Run:
    """A run ready to step: its folder (locked for writing), state and evaluator.

    Close it (or use it as a context manager) to stop the evaluator's render thread and
    release the folder's writer lock; the lock also ends with the process.
    """

    folder: RunFolder
    state: SearchState
    evaluator: Evaluator
    config: RunConfig

    def close(self) -> None:
        """Close the evaluator and release the run folder's writer lock."""
        self.evaluator.close()
        self.folder.release()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def package_versions() -> dict[str, str]:
    """Return the versions of Python, evoemotion and :data:`RECORDED_PACKAGES`."""
    versions = {"python": platform.python_version(), "evoemotion": __version__}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def seed_everything(seed: int) -> None:
    """Seed the global Python, numpy and torch generators (for code that uses them).

    Args:
        seed: The run seed.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_classifiers(sources: list[str], device: str = "cpu") -> list[EmotionModel]:
    """Load every classifier of a run.

    Args:
        sources: ``"default"`` or checkpoint paths.
        device: Device to load onto.

    Returns:
        The models, in order.

    Raises:
        ConfigError: No source given.
        CheckpointError: A checkpoint is missing or unreadable.
    """
    from evoemotion.emotion import load_model

    if not sources:
        raise ConfigError("at least one `classifiers` is needed")
    return [load_model(source, device=device) for source in sources]


def build_evaluator(
    config: RunConfig,
    genotype: Genotype,
    features: Mapping[str, ImageFeature],
    models: list[EmotionModel],
) -> Evaluator:
    """Build a run's evaluator (also on every Dask worker of a distributed run).

    Args:
        config: The run options (device, precision, crops, chunk, render and score sizes).
        genotype: The run's genotype.
        features: Image features of the archive's objective (``spec.features``).
        models: The loaded classifiers.

    Returns:
        The evaluator.

    Raises:
        ConfigError: A bad scoring option.
    """
    from evoemotion.pipeline import Evaluator
    from evoemotion.scoring import Scorer

    scorer = Scorer(
        models,
        device=config.device,
        crops=config.crops,
        batch_size=config.chunk_size,
        size=config.score_size,
        precision=config.precision,
    )
    return Evaluator(
        genotype,
        scorer,
        render_size=config.render_size,
        features=features,
        renderer=config.renderer,
    )


def check_classifiers(records: Sequence[Mapping[str, Any]], models: list[EmotionModel]) -> None:
    """Check that loaded classifiers are the ones a run recorded.

    Args:
        records: ``config.json`` classifier records (``source``, ``identity``).
        models: The classifiers loaded from those sources, in order.

    Raises:
        CheckpointError: A classifier's hash differs from the recorded one.
    """
    for record, model in zip(records, models, strict=True):
        if model.identity != record["identity"]:
            raise CheckpointError(
                f"classifier {record['source']} has changed since the run started "
                f"(hash {model.identity[:12]} != recorded {record['identity'][:12]})"
            )


def default_run_name(config: RunConfig) -> str:
    """Return ``GENOTYPE-ARCHIVE-YYYYmmdd-HHMMSS`` for a new run.

    Args:
        config: The run config.

    Returns:
        A folder name (path separators and odd characters replaced).
    """
    name = f"{Path(config.genotype).stem}-{config.archive}-{time.strftime('%Y%m%d-%H%M%S')}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _continued_config(config: RunConfig, snapshot: ArchiveSnapshot) -> RunConfig:
    """The config of a run continued from ``snapshot``: its genotype and archive options."""
    spec = snapshot.spec
    cells = None if spec.kind == "per-class" else (spec.dims or [spec.cells])[0]
    return dataclasses.replace(
        config,
        genotype=snapshot.genotype.name,
        archive=spec.kind,
        objective=spec.objective,
        measures=list(spec.measure_names) if spec.kind == "measures" else None,
        cells=spec.cells if spec.centroids is not None else cells,
    )


def _check_outputs(spec: ArchiveSpec, models: list[EmotionModel], source: str) -> None:
    """Check that the classifiers produce every output a continued archive records."""
    first = models[0]
    produced = [*first.class_names, *first.regression_names, *spec.features]
    produced += ["disagreement"] if len(models) > 1 else []
    missing = [name for name in spec.output_names if name not in produced]
    if missing:
        raise ConfigError(
            f"the archive of {source} records output(s) {', '.join(missing)} that the "
            f"classifier does not produce (it has {', '.join(produced)})"
        )


def start_run(
    config: RunConfig, out: str | os.PathLike | None = None, *, key: SigningKey | None = None
) -> Run:
    """Start a new run: build everything and create (and lock) its folder.

    With ``config.continue_from`` the archive is filled from that run folder's data
    snapshot (its genotype and archive spec are used; emitters and novelty populations
    start afresh) and ``config.json`` records where the elites came from.

    Args:
        config: The run options.
        out: The run folder; default ``runs/<default_run_name>`` in the current folder.
        key: The checkpoint signing key (default: the user's).

    Returns:
        The run, at iteration 0.

    Raises:
        ConfigError: A bad option.
        CheckpointError: A classifier cannot be loaded, or ``continue_from`` has no
            snapshot.
        DataError: The snapshot of ``continue_from`` is unreadable.
        GenomeError: The genotype preset is invalid.
    """
    from evoemotion.archives import make_archive_spec
    from evoemotion.emotion.model import classifier_record
    from evoemotion.genotypes import load_genotype
    from evoemotion.runs import RunFolder
    from evoemotion.search import make_search

    if config.iterations < 0:
        raise ConfigError(f"`iterations` must be >= 0, got {config.iterations}")
    snapshot = None
    if config.continue_from is not None:
        source = RunFolder.open(config.continue_from, checkpoint=False)
        snapshot = source.snapshot()
        config = _continued_config(config, snapshot)
    seed_everything(config.seed)
    genotype = snapshot.genotype if snapshot else load_genotype(config.genotype)
    models = load_classifiers(config.classifiers)
    first = models[0]
    if snapshot:
        spec = snapshot.spec
        _check_outputs(spec, models, str(source.path))
    else:
        spec = make_archive_spec(
            config.archive,
            class_names=first.class_names,
            regression_names=first.regression_names,
            scales=first.scales,
            objective=config.objective,
            measures=config.measures,
            cells=config.cells,
            extra_outputs=["disagreement"] if len(models) > 1 else [],
            seed=config.seed,
        )
    state = make_search(
        config.algorithm,
        genotype=genotype,
        spec=spec,
        batch_size=config.batch_size,
        seed=config.seed,
        options=config.options,
    )
    if snapshot:
        snapshot.fill(state.archive)
    evaluator = build_evaluator(config, state.genotype, state.spec.features, models)
    document = {
        "run": dataclasses.asdict(config),
        "genotype": {"name": genotype.name, "kind": genotype.kind, "preset": genotype.preset},
        "archive": spec.to_dict(),
        "classifiers": [
            classifier_record(s, m) for s, m in zip(config.classifiers, models, strict=True)
        ],
        "versions": package_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if snapshot:
        document["continued_from"] = {
            "folder": str(source.path.resolve()),
            "snapshot_sha256": hashlib.sha256(source.snapshot_path.read_bytes()).hexdigest(),
            "iteration": snapshot.iteration,
            "evaluations": snapshot.evaluations,
            "elites": len(snapshot),
            "classifiers": source.config.get("classifiers", []),
        }
    folder = RunFolder.create(
        Path(out) if out else Path("runs") / default_run_name(config),
        document,
        centroids=spec.centroids,
        key=key,
    )
    try:
        folder.save_checkpoint(state)
    except BaseException:
        folder.release()
        raise
    return Run(folder, state, evaluator, config)


def resume_run(
    path: str | os.PathLike,
    *,
    device: str | None = None,
    trust: bool = False,
    key: SigningKey | None = None,
) -> Run:
    """Lock a run folder and reopen it at its last checkpoint.

    The checkpoint must be signed with ``key`` unless ``trust`` is set. The classifiers
    are reloaded from the sources in ``config.json`` and must have the recorded identity
    hashes. Nothing in the folder changes before the lock is held.

    Args:
        path: The run folder.
        device: Scoring device to use instead of the recorded one.
        trust: Load a checkpoint that is unsigned or signed with another key (it is a
            pickle: loading it runs any code it holds).
        key: The checkpoint key (default: the user's).

    Returns:
        The run, at its checkpoint's iteration.

    Raises:
        CheckpointError: Not a run folder, a corrupt checkpoint, or a classifier whose
            hash differs from the recorded one.
        UntrustedCheckpointError: The checkpoint is not signed with ``key``.
        RunBusyError: Another process is writing the folder.
    """
    from evoemotion.runs import RunFolder

    folder = RunFolder.open(path, key=key).lock()
    try:
        document = folder.config
        try:
            config = RunConfig.from_dict(document["run"])
            records = document["classifiers"]
        except (KeyError, TypeError, ConfigError) as err:
            raise CheckpointError(
                f"{folder.config_path} is not a complete run config ({err})"
            ) from err
        if device is not None:
            config.device = device
        models = load_classifiers([r["source"] for r in records])
        check_classifiers(records, models)
        state = folder.load_checkpoint(trust=trust)
        folder.write_metrics(state.metrics)
        evaluator = build_evaluator(config, state.genotype, state.spec.features, models)
    except BaseException:
        folder.release()
        raise
    return Run(folder, state, evaluator, config)


def snapshot_run(
    path: str | os.PathLike, *, trust: bool = False, key: SigningKey | None = None
) -> ArchiveSnapshot:
    """Write the data snapshot of a run folder from its checkpoint (for old folders).

    Args:
        path: The run folder.
        trust: Load a checkpoint that is unsigned or signed with another key.
        key: The checkpoint key (default: the user's).

    Returns:
        The snapshot written to the folder's ``archive.npz``.

    Raises:
        CheckpointError: Not a run folder or a corrupt checkpoint.
        UntrustedCheckpointError: The checkpoint is not signed with ``key``.
        RunBusyError: Another process is writing the folder.
    """
    from evoemotion.atomic import atomic_write
    from evoemotion.runs import RunFolder
    from evoemotion.snapshot import ArchiveSnapshot

    folder = RunFolder.open(path, key=key).lock()
    try:
        snapshot = ArchiveSnapshot.of(folder.load_checkpoint(trust=trust))
        atomic_write(folder.snapshot_path, snapshot.to_bytes())
    finally:
        folder.release()
    return snapshot
