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
    from evoemotion.emotion import EmotionModel
    from evoemotion.genotypes import Genotype
    from evoemotion.pipeline import Evaluator, ImageFeature
    from evoemotion.runs import RunFolder
    from evoemotion.search import SearchState

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
    """A run ready to step: its folder, state and evaluator."""

    folder: RunFolder
    state: SearchState
    evaluator: Evaluator
    config: RunConfig


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
        raise ConfigError("at least one --classifier is needed")
    return [load_model(source, device=device) for source in sources]


def classifier_record(source: str, model: EmotionModel) -> dict[str, Any]:
    """Describe a classifier for ``config.json`` (never its weights).

    Args:
        source: How it was named (``"default"`` or a path).
        model: The loaded model.

    Returns:
        Source (absolute path unless ``default``), identity hash, outputs and backbone.
    """
    where = source if source == "default" else str(Path(source).expanduser().resolve())
    return {
        "source": where,
        "identity": model.identity,
        "outputs": model.output_names,
        "backbone": model.metadata.get("backbone", getattr(model.info, "name", "")),
    }


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


def start_run(config: RunConfig, out: str | os.PathLike | None = None) -> Run:
    """Start a new run: build everything and create its folder.

    Args:
        config: The run options.
        out: The run folder; default ``runs/<default_run_name>`` in the current folder.

    Returns:
        The run, at iteration 0.

    Raises:
        ConfigError: A bad option.
        CheckpointError: A classifier cannot be loaded.
        GenomeError: The genotype preset is invalid.
    """
    from evoemotion.archives import make_archive_spec
    from evoemotion.genotypes import load_genotype
    from evoemotion.runs import RunFolder
    from evoemotion.search import make_search

    if config.iterations < 0:
        raise ConfigError(f"--iterations must be >= 0, got {config.iterations}")
    seed_everything(config.seed)
    genotype = load_genotype(config.genotype)
    models = load_classifiers(config.classifiers)
    first = models[0]
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
    folder = RunFolder.create(
        Path(out) if out else Path("runs") / default_run_name(config),
        document,
        centroids=spec.centroids,
    )
    folder.save_checkpoint(state)
    return Run(folder, state, evaluator, config)


def resume_run(path: str | os.PathLike, *, device: str | None = None) -> Run:
    """Reopen a run folder at its last checkpoint.

    The classifiers are reloaded from the sources in ``config.json`` and must have the
    recorded identity hashes. A pickle is code: only resume run folders you trust.

    Args:
        path: The run folder.
        device: Scoring device to use instead of the recorded one.

    Returns:
        The run, at its checkpoint's iteration.

    Raises:
        CheckpointError: Not a run folder, a corrupt checkpoint, or a classifier whose
            hash differs from the recorded one.
    """
    from evoemotion.runs import RunFolder

    folder = RunFolder.open(path)
    document = folder.config
    try:
        config = RunConfig.from_dict(document["run"])
        records = document["classifiers"]
    except (KeyError, TypeError, ConfigError) as err:
        raise CheckpointError(f"{folder.config_path} is not a complete run config ({err})") from err
    if device is not None:
        config.device = device
    models = load_classifiers([r["source"] for r in records])
    check_classifiers(records, models)
    state = folder.load_checkpoint()
    folder.write_metrics(state.metrics)
    evaluator = build_evaluator(config, state.genotype, state.spec.features, models)
    return Run(folder, state, evaluator, config)
