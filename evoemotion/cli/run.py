"""Commands ``run`` (start a MAP-Elites, novelty-search or baseline run), ``resume``
(continue one) and ``snapshot`` (write the data snapshot of an old run folder)."""

from __future__ import annotations

import argparse
import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from evoemotion.choices import (
    BEHAVIORS,
    EMITTERS,
    MAP_ELITES_DEFAULTS,
    NOVELTY_DEFAULTS,
    NOVELTY_POLICIES,
)
from evoemotion.cli.options import (
    add_classifier,
    add_device,
    add_seed,
    add_size,
    positive_int,
)

if TYPE_CHECKING:
    from evoemotion.experiment import Run
    from evoemotion.pipeline import EvaluatorLike


def _int_or_none(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def _measures(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run``, ``resume`` and ``snapshot`` commands.

    Args:
        subparsers: The top-level sub-parser collection.
    """
    from evoemotion.experiment import RunConfig

    run = subparsers.add_parser(
        "run",
        help="evolve images into a quality-diversity archive (MAP-Elites, novelty search, "
        "NSLC or random search)",
        description="Evolve images with MAP-Elites, novelty search / NSLC (or the random "
        "baseline) into an archive whose measures are emotion-classifier outputs; writes a "
        "run folder with config, metrics, checkpoints and the elites.",
    )
    _add_search_options(run)
    _add_novelty_options(run)
    _add_dqd_options(run)
    _add_run_options(run)
    _add_device_and_export(run, RunConfig.device)
    _add_key_file(run)
    _add_cluster_options(run)
    run.set_defaults(handler=run_command)

    resume = subparsers.add_parser(
        "resume",
        help="continue a run from its last checkpoint",
        description="Continue a run folder from its last checkpoint. A checkpoint is a "
        "pickle, and a pickle is code: resume loads only checkpoints signed with your key "
        "(see --trust and --key-file).",
    )
    resume.add_argument("folder", help="the run folder (runs/NAME)")
    resume.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="total iterations the run should reach (default: the run's own)",
    )
    _add_device_and_export(resume, None)
    _add_trust(resume)
    _add_cluster_options(resume)
    resume.set_defaults(handler=resume_command)

    snapshot = subparsers.add_parser(
        "snapshot",
        help="write the data snapshot (archive.npz) of a run folder made before snapshots",
        description="Read a run folder's checkpoint and write its archive as plain data "
        "(archive.npz), which plot, gallery, analyze, render RUN and run --continue-from "
        "read. Runs write it by themselves beside every checkpoint; this is for folders "
        "made by older versions. It loads the pickled checkpoint: run it only on folders "
        "you trust.",
    )
    snapshot.add_argument("folder", help="the run folder (runs/NAME)")
    _add_trust(snapshot)
    snapshot.set_defaults(handler=snapshot_command)


def _add_search_options(run: argparse.ArgumentParser) -> None:
    """Genotype, archive and MAP-Elites options of ``run``."""
    from evoemotion.archives import ARCHIVE_KINDS, DEFAULT_CELLS
    from evoemotion.experiment import RunConfig
    from evoemotion.objectives import OBJECTIVES

    d = RunConfig()
    run.add_argument(
        "--genotype",
        default=None,
        help="genotype preset name (cppn, sims, cppn-neat ...) or TOML file "
        f"(default: {d.genotype})",
    )
    run.add_argument(
        "--archive",
        default=None,
        choices=ARCHIVE_KINDS,
        help="archive kind: categorical = CVT over the class-probability simplex, "
        "per-class = one cell per class, va / vad = valence-arousal(-dominance) "
        f"grid, measures = grid over --measures (default: {d.archive}, or "
        "measures when --measures is given)",
    )
    run.add_argument(
        "--measures",
        type=_measures,
        default=None,
        metavar="A,B",
        help="two classifier outputs for --archive measures, e.g. fear,joy or valence,dominance",
    )
    run.add_argument(
        "--cells",
        type=int,
        default=None,
        help=f"CVT cells (categorical, default {DEFAULT_CELLS['categorical']}) or bins per axis "
        f"({', '.join(f'{k} {v}' for k, v in DEFAULT_CELLS.items() if k != 'categorical')})",
    )
    run.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default=None,
        help="objective: confidence (top-class probability; default for "
        "categorical and per-class), aesthetic (Ross-Ralph bell curve; default for "
        "grids), none",
    )
    run.add_argument(
        "--algorithm",
        default=d.algorithm,
        help="search algorithm: map-elites; novelty = DEAP novelty search; nslc = "
        "novelty search with local competition (NSGA-II); random = the same "
        "budget of fresh random genomes; dqd = differentiable QD along the gradients "
        "of the objective and measures (CMA-MEGA, CMA-MAEGA, OMG-MEGA; flat CPPN "
        "genotypes). Every algorithm fills the same kind of archive (default: %(default)s)",
    )
    run.add_argument(
        "--emitter",
        default=None,
        choices=EMITTERS,
        help="MAP-Elites emitter: cma-me, iso-line, gaussian (flat-vector "
        "genotypes) or genome (the genotype's own mutation/crossover); default "
        "iso-line for cppn, genome otherwise",
    )
    run.add_argument(
        "--emitters",
        type=int,
        default=None,
        help=f"number of emitter instances sharing the batch (default: "
        f"{MAP_ELITES_DEFAULTS['emitters']}; three per class for dqd's cma-mega on per-class)",
    )
    run.add_argument(
        "--sigma",
        type=float,
        default=MAP_ELITES_DEFAULTS["sigma"],
        help="emitter step size: CMA-ES sigma0, Gaussian sigma, iso-line iso sigma "
        "(default: %(default)s)",
    )
    run.add_argument(
        "--line-sigma",
        type=float,
        default=MAP_ELITES_DEFAULTS["line_sigma"],
        help="iso-line emitter's line sigma (default: %(default)s)",
    )
    run.add_argument(
        "--crossover",
        type=float,
        default=None,
        metavar="P",
        help="crossover probability of the genome emitter and of novelty "
        "search's offspring (default 0.2 when the genotype has crossover, else 0)",
    )


def _add_run_options(run: argparse.ArgumentParser) -> None:
    """Classifier, budget, sizes, output and seeding options of ``run``."""
    from evoemotion.experiment import RunConfig

    d = RunConfig()
    add_classifier(
        run,
        repeat=True,
        help="classifier checkpoint or 'default'; repeat for an ensemble (mean "
        "output, disagreement recorded) (default: default)",
    )
    run.add_argument(
        "--crops",
        type=int,
        default=d.crops,
        help="deterministic crops/flips averaged per image, 1-10 (default: %(default)s)",
    )
    run.add_argument(
        "--iterations",
        type=int,
        default=d.iterations,
        help="iterations to run (default: %(default)s)",
    )
    run.add_argument(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help="genomes evaluated per iteration (default: %(default)s)",
    )
    run.add_argument(
        "--chunk-size",
        type=int,
        default=d.chunk_size,
        help="genomes rendered/scored at a time; the next chunk renders while "
        "this one is scored (default: %(default)s)",
    )
    add_size(run, "--render-size", what="the rendered images", default=d.render_size)
    add_size(
        run, "--score-size", what="what the classifier sees", default=d.score_size, native=None
    )
    add_seed(run, default=d.seed)
    run.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="run folder (default: runs/GENOTYPE-ARCHIVE-TIMESTAMP)",
    )
    run.add_argument(
        "--precision",
        default=d.precision,
        choices=["auto", "fp32", "bf16"],
        help="scoring precision; auto = bf16 autocast on CUDA, fp32 on CPU (default: %(default)s)",
    )
    run.add_argument(
        "--checkpoint-every",
        type=int,
        default=d.checkpoint_every,
        metavar="K",
        help="checkpoint every K iterations; 0 = only at the end (default: %(default)s)",
    )
    add_size(run, "--export-size", what="the exported elite PNGs", default=d.export_size)
    run.add_argument(
        "--continue-from",
        default=None,
        metavar="RUN",
        help="fill the new run's archive with the elites of another run folder, read from "
        "its data snapshot (archive.npz; its pickle is never opened); the genotype and "
        "archive come from RUN, emitters and novelty population start afresh, and "
        "config.json records where the elites came from",
    )


def _add_trust(parser: argparse.ArgumentParser) -> None:
    """``--trust`` and ``--key-file``: which checkpoints may be loaded."""
    _add_key_file(parser)
    parser.add_argument(
        "--trust",
        action="store_true",
        help="load the checkpoint even if it is not signed with your key (made by an older "
        "evoemotion, by another user or on another machine). A checkpoint is a pickle, "
        "and loading a pickle runs any code it holds: use this only for folders whose "
        "author you trust",
    )


def _add_key_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-file",
        default=None,
        metavar="FILE",
        help="secret key that signs and checks checkpoints (default: $EVOEMOTION_KEY_FILE, "
        "else ~/.config/evoemotion/checkpoint.key, created on first use, mode 0600)",
    )


def _key(args: argparse.Namespace):
    from evoemotion.signing import load_key

    return load_key(args.key_file) if args.key_file else None


def _add_device_and_export(parser: argparse.ArgumentParser, device: str | None) -> None:
    add_device(parser, default=device)
    parser.add_argument(
        "--no-export", action="store_true", help="do not write elites/ and elites.csv at the end"
    )


def _scheduler_address(text: str) -> str:
    from evoemotion.distributed import check_scheduler_address
    from evoemotion.errors import ConfigError

    try:
        return check_scheduler_address(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "distributed evaluation (Dask; the archive is the same as in one process)"
    ).add_mutually_exclusive_group()
    group.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="render and score on N local Dask worker processes",
    )
    group.add_argument(
        "--scheduler",
        type=_scheduler_address,
        default=None,
        metavar="tcp://HOST:PORT",
        help="render and score on the workers of a running Dask scheduler "
        "(see the README: one worker per GPU)",
    )


def _add_novelty_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("novelty search (--algorithm novelty or nslc)")
    group.add_argument(
        "--behavior",
        default=NOVELTY_DEFAULTS["behavior"],
        choices=BEHAVIORS,
        help="behaviour descriptor: measures = the archive's measures, probs = "
        "class probabilities, vad = valence/arousal/dominance, embedding = the "
        "classifier's penultimate layer (default: %(default)s)",
    )
    group.add_argument(
        "-k",
        "--neighbors",
        type=int,
        default=NOVELTY_DEFAULTS["k"],
        help="nearest neighbours for novelty and local competition (default: %(default)s)",
    )
    group.add_argument(
        "--mu",
        type=int,
        default=None,
        help="population kept between iterations; each iteration breeds "
        "--batch-size offspring (default: the batch size)",
    )
    group.add_argument(
        "--novelty-archive",
        default=NOVELTY_DEFAULTS["novelty_policy"],
        choices=NOVELTY_POLICIES,
        help="novelty-archive add policy: threshold = add offspring at least as "
        "novel as an adaptive threshold, random = add each with probability "
        "--novelty-add-prob (default: %(default)s)",
    )
    group.add_argument(
        "--novelty-threshold",
        type=float,
        default=None,
        help="starting threshold (default: the first generation's mean novelty)",
    )
    group.add_argument(
        "--novelty-add-prob",
        type=float,
        default=NOVELTY_DEFAULTS["novelty_add_prob"],
        metavar="P",
        help="add probability of --novelty-archive random (default: %(default)s)",
    )
    group.add_argument(
        "--novelty-cap",
        type=_int_or_none,
        default=NOVELTY_DEFAULTS["novelty_cap"],
        metavar="N|none",
        help="novelty-archive size cap, oldest entries dropped first (default: %(default)s)",
    )


def _add_dqd_options(parser: argparse.ArgumentParser) -> None:
    from evoemotion.choices import (
        DQD_DEFAULTS,
        DQD_EMITTERS,
        DQD_PER_CLASS_DEFAULTS,
        DQD_RESTARTS,
        GRADIENT_OPTIMIZERS,
        RENDERERS,
    )

    group = parser.add_argument_group(
        "differentiable QD (--algorithm dqd; flat CPPN genotypes such as cppn and cppn-hsv; "
        "objective confidence (the default with dqd) or none; not with --workers)"
    )
    group.add_argument(
        "--dqd-emitter",
        choices=DQD_EMITTERS,
        default=DQD_DEFAULTS["emitter"],
        help="cma-mega = CMA-ES over gradient coefficients (2-stage improvement ranking); "
        "cma-maega = the same with CMA-MAE's archive learning rate; omg-mega = archive "
        "elites stepped along random gradient combinations (default: %(default)s). "
        "--emitters sets how many (per-class: at least one per class)",
    )
    group.add_argument(
        "--archive-lr",
        type=float,
        default=DQD_DEFAULTS["archive_lr"],
        help="CMA-MAEGA's archive learning rate in (0, 1] (default: %(default)s)",
    )
    settings = (
        (
            "--dqd-sigma",
            "sigma",
            float,
            None,
            "CMA-MEGA's initial coefficient step sigma0, "
            "OMG-MEGA's sigma_g, on unit-length gradients",
        ),
        ("--dqd-lr", "lr", float, None, "learning rate of the CMA-MEGA solution point"),
        (
            "--dqd-optimizer",
            "optimizer",
            str,
            GRADIENT_OPTIMIZERS,
            "optimiser of the CMA-MEGA solution point",
        ),
        (
            "--dqd-restart",
            "restart",
            str,
            DQD_RESTARTS,
            "when a CMA-MEGA emitter restarts from an elite: no-improvement = after an "
            "iteration whose branches all stayed out of the archive, basic = when its CMA-ES "
            "converges (CMA-MAEGA: basic)",
        ),
    )
    for flag, key, kind, choices, text in settings:
        group.add_argument(
            flag,
            type=kind,
            choices=choices,
            default=None,
            help=f"{text} (default: {DQD_DEFAULTS[key]}; {DQD_PER_CLASS_DEFAULTS[key]} for "
            "cma-mega on per-class, whose measures have no gradient)",
        )
    parser.add_argument(
        "--renderer",
        choices=RENDERERS,
        default="auto",
        help="numba = CPU kernels; torch = render flat CPPNs with torch on the scoring device "
        "(no host round trip); auto = torch on CUDA for flat CPPNs, else numba "
        "(default: %(default)s)",
    )


def _check_dqd_cluster(algorithm: str, args: argparse.Namespace) -> None:
    from evoemotion.errors import ConfigError

    if algorithm == "dqd" and (args.workers is not None or args.scheduler is not None):
        raise ConfigError(
            "--algorithm dqd computes gradients in this process; drop --workers/--scheduler"
        )


def _algorithm_options(args: argparse.Namespace) -> dict:
    """Return the options of the chosen algorithm; other algorithms' flags are ignored."""
    if args.algorithm == "map-elites":
        return {
            "emitter": args.emitter,
            "emitters": MAP_ELITES_DEFAULTS["emitters"] if args.emitters is None else args.emitters,
            "sigma": args.sigma,
            "line_sigma": args.line_sigma,
            "crossover_prob": args.crossover,
        }
    if args.algorithm == "dqd":
        chosen = {
            "emitter": args.dqd_emitter,
            "emitters": args.emitters,
            "sigma": args.dqd_sigma,
            "lr": args.dqd_lr,
            "optimizer": args.dqd_optimizer,
            "restart": args.dqd_restart,
            "archive_lr": args.archive_lr,
        }  # unset: the archive kind's default (DqdSearch)
        return {key: value for key, value in chosen.items() if value is not None}
    if args.algorithm in ("novelty", "nslc"):
        return {
            "behavior": args.behavior,
            "k": args.neighbors,
            "mu": args.mu,
            "novelty_policy": args.novelty_archive,
            "novelty_threshold": args.novelty_threshold,
            "novelty_add_prob": args.novelty_add_prob,
            "novelty_cap": args.novelty_cap,
            "crossover_prob": args.crossover,
        }
    return {}


def run_command(args: argparse.Namespace) -> int:
    """Handle ``evoemotion run``: start a run folder, step it, export the elites.

    Args:
        args: The parsed ``run`` options.

    Returns:
        0 when the run finished, 130 when a signal stopped it (checkpoint saved).
    """
    from evoemotion.errors import ConfigError
    from evoemotion.experiment import RunConfig, start_run

    if args.continue_from is not None:
        given = [
            f"--{name}"
            for name in ("genotype", "archive", "measures", "cells", "objective")
            if getattr(args, name) is not None
        ]
        if given:
            raise ConfigError(
                f"--continue-from {args.continue_from} takes the genotype and archive of that "
                f"run: drop {', '.join(given)}"
            )
    _check_dqd_cluster(args.algorithm, args)
    dqd_objective = "confidence" if args.algorithm == "dqd" else None
    config = RunConfig(
        genotype=args.genotype or RunConfig.genotype,
        archive=args.archive or ("measures" if args.measures else RunConfig.archive),
        algorithm=args.algorithm,
        objective=args.objective or dqd_objective,
        measures=args.measures,
        cells=args.cells,
        classifiers=args.classifier or ["default"],
        device=args.device,
        precision=args.precision,
        crops=args.crops,
        iterations=args.iterations,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        render_size=args.render_size,
        score_size=args.score_size,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        export_size=args.export_size,
        renderer=args.renderer,
        options=_algorithm_options(args),
        continue_from=args.continue_from,
    )
    print("evoemotion run: loading the genotype and classifier, building the archive ...")
    run = start_run(config, args.out, key=_key(args))
    print(f"evoemotion run: writing to {run.folder.path}")
    return _drive(run, config.iterations, args)


def resume_command(args: argparse.Namespace) -> int:
    """Handle ``evoemotion resume``: continue a run folder from its checkpoint.

    Args:
        args: The parsed ``resume`` options.

    Returns:
        0 when the run finished, 130 when a signal stopped it (checkpoint saved).
    """
    from evoemotion.experiment import resume_run

    run = resume_run(args.folder, device=args.device, trust=args.trust, key=_key(args))
    iterations = run.config.iterations if args.iterations is None else args.iterations
    if iterations <= run.state.iteration:
        run.close()
        print(
            f"evoemotion resume: {run.folder.path} is already at iteration "
            f"{run.state.iteration} (asked for {iterations}); nothing was run. Give "
            "--iterations above that to continue"
        )
        return 0
    print(
        f"evoemotion resume: {run.folder.path} at iteration {run.state.iteration} of {iterations}"
    )
    return _drive(run, iterations, args)


def snapshot_command(args: argparse.Namespace) -> int:
    """Handle ``evoemotion snapshot``: write a run folder's ``archive.npz``.

    Args:
        args: The parsed ``snapshot`` options.

    Returns:
        0.
    """
    from evoemotion.experiment import snapshot_run

    snapshot = snapshot_run(args.folder, trust=args.trust, key=_key(args))
    print(
        f"evoemotion snapshot: wrote {len(snapshot)} elites at iteration "
        f"{snapshot.iteration} to {args.folder}/archive.npz"
    )
    return 0


@contextlib.contextmanager
def _evaluator(
    run: Run, args: argparse.Namespace, stop: threading.Event
) -> Iterator[EvaluatorLike]:
    """The run's own evaluator, or a Dask one for ``--workers`` / ``--scheduler``."""
    if args.workers is None and args.scheduler is None:
        yield run.evaluator
        return
    _check_dqd_cluster(run.config.algorithm, args)
    from evoemotion.distributed import cluster_evaluator

    where = args.scheduler or f"{args.workers} local worker processes"
    print(f"evoemotion {args.command}: evaluating on Dask ({where})")
    with cluster_evaluator(
        run, workers=args.workers, scheduler=args.scheduler, stop=stop
    ) as evaluator:
        yield evaluator


def _drive(run: Run, iterations: int, args: argparse.Namespace) -> int:
    """Step the run, export the elites at the end, then release the run folder.

    An OS error while writing (no space, no permission ...) becomes one line naming the
    file, the last intact checkpoint and the command that resumes.
    """
    from evoemotion.errors import EvoEmotionError, WriteError

    with run:
        try:
            return _step_and_export(run, iterations, args)
        except WriteError as err:
            done = run.folder.checkpoint_iteration
            kept = (
                "no checkpoint was written"
                if done is None
                else f"the last checkpoint (iteration {done}) is intact; free the space or fix "
                f"the permission, then continue with: evoemotion resume {run.folder.path}"
            )
            raise EvoEmotionError(f"{err}; {kept}") from err


def _step_and_export(run: Run, iterations: int, args: argparse.Namespace) -> int:
    """Step the run with a progress bar, checkpointing; export the elites at the end."""
    from tqdm import tqdm

    from evoemotion.errors import EvoEmotionError
    from evoemotion.runs import run_iterations, stop_on_signals

    state = run.state
    bar = tqdm(
        total=iterations,
        initial=min(state.iteration, iterations),
        unit="it",
        desc="iterations",
        dynamic_ncols=True,
    )

    def show(row: dict[str, float]) -> None:
        evals_per_s = row["evaluations"] / row["wall_time"] if row["wall_time"] else 0.0
        bar.set_postfix(
            {
                "evals/s": f"{evals_per_s:.0f}",
                "coverage": f"{row['coverage']:.3f}",
                "QD": f"{row['qd_score']:.1f}",
                "best": f"{row['max_objective']:.3f}",
            },
            refresh=False,
        )
        bar.update(1)

    with bar, stop_on_signals() as stop, _evaluator(run, args, stop) as evaluator:
        finished = run_iterations(
            run.folder,
            state,
            evaluator,
            iterations=iterations,
            checkpoint_every=run.config.checkpoint_every,
            stop=stop,
            callback=show,
        )
    if getattr(evaluator, "lost", None):
        raise EvoEmotionError(
            f"{evaluator.lost}; checkpoint saved at iteration "
            f"{state.iteration}; continue with: evoemotion resume "
            f"{run.folder.path}"
        )
    if not finished:
        print(
            f"evoemotion: stopped at iteration {state.iteration}; checkpoint saved. "
            f"Continue with: evoemotion resume {run.folder.path}"
        )
        return 130
    if not args.no_export:
        from evoemotion.cli.progress import Bars
        from evoemotion.snapshot import ArchiveSnapshot
        from evoemotion.views.export import export_elites

        snapshot = ArchiveSnapshot.of(state)
        with Bars("elite") as bars:
            export_elites(run.folder, snapshot, size=run.config.export_size, progress=bars)
    last = state.metrics[-1] if state.metrics else None
    summary = (
        f"coverage {last['coverage']:.3f}, QD score {last['qd_score']:.2f}, "
        f"best {last['max_objective']:.3f}"
        if last
        else "no iterations run"
    )
    print(
        f"evoemotion: done, {state.iteration} iterations, {summary}; run folder {run.folder.path}"
    )
    return 0
