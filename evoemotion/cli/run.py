"""Commands ``run`` (start a MAP-Elites, novelty-search or baseline run) and ``resume``
(continue one)."""

from __future__ import annotations

import argparse
import contextlib
import inspect
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evoemotion.experiment import Run
    from evoemotion.pipeline import EvaluatorLike


def _int_or_none(text: str) -> int | None:
    return None if text.lower() in ("none", "native") else int(text)


def _measures(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run`` and ``resume`` commands.

    Args:
        subparsers: The top-level sub-parser collection.
    """
    from evoemotion.archives import ARCHIVE_KINDS, DEFAULT_CELLS
    from evoemotion.experiment import RunConfig
    from evoemotion.objectives import OBJECTIVES

    d = RunConfig()
    run = subparsers.add_parser(
        "run",
        help="evolve images into a quality-diversity archive (MAP-Elites, novelty search, "
        "NSLC or random search)",
        description="Evolve images with MAP-Elites, novelty search / NSLC (or the random "
        "baseline) into an archive whose measures are emotion-classifier outputs; writes a "
        "run folder with config, metrics, checkpoints and the elites.",
    )
    run.add_argument(
        "--genotype",
        default=d.genotype,
        help="genotype preset name (cppn, sims, cppn-neat ...) or TOML file (default: %(default)s)",
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
        help="MAP-Elites emitter: cma-me, iso-line, gaussian (flat-vector "
        "genotypes) or genome (the genotype's own mutation/crossover); default "
        "iso-line for cppn, genome otherwise",
    )
    run.add_argument(
        "--emitters",
        type=int,
        default=4,
        help="number of emitter instances sharing the batch (default: %(default)s)",
    )
    run.add_argument(
        "--sigma",
        type=float,
        default=0.2,
        help="emitter step size: CMA-ES sigma0, Gaussian sigma, iso-line iso sigma "
        "(default: %(default)s)",
    )
    run.add_argument(
        "--line-sigma",
        type=float,
        default=0.2,
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
    _add_novelty_options(run)
    _add_dqd_options(run)
    run.add_argument(
        "--classifier",
        action="append",
        default=None,
        metavar="CKPT",
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
    run.add_argument(
        "--render-size",
        type=int,
        default=d.render_size,
        help="side of the rendered images in px (default: %(default)s)",
    )
    run.add_argument(
        "--score-size",
        type=_int_or_none,
        default=d.score_size,
        metavar="PX|native",
        help="side the classifier sees; 'native' = its own input size (default: %(default)s)",
    )
    run.add_argument("--seed", type=int, default=d.seed, help="random seed (default: %(default)s)")
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
    run.add_argument(
        "--export-size",
        type=int,
        default=d.export_size,
        help="side of the exported elite PNGs (default: %(default)s)",
    )
    _add_device_and_export(run, d.device)
    _add_cluster_options(run)
    run.set_defaults(handler=run_command)

    resume = subparsers.add_parser(
        "resume",
        help="continue a run from its last checkpoint",
        description="Continue a run folder from its last checkpoint. A checkpoint is a "
        "pickle, and a pickle is code: only resume run folders you trust.",
    )
    resume.add_argument("folder", help="the run folder (runs/NAME)")
    resume.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="total iterations the run should reach (default: the run's own)",
    )
    _add_device_and_export(resume, None)
    _add_cluster_options(resume)
    resume.set_defaults(handler=resume_command)


def _add_device_and_export(parser: argparse.ArgumentParser, device: str | None) -> None:
    default = "the recorded one" if device is None else device
    parser.add_argument(
        "--device",
        default=device,
        help=f"scoring device: auto (CUDA when present), cpu, cuda, cuda:INDEX "
        f"(default: {default})",
    )
    parser.add_argument(
        "--no-export", action="store_true", help="do not write elites/ and elites.csv at the end"
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
        type=_positive_int,
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
        default="measures",
        help="behaviour descriptor: measures = the archive's measures, probs = "
        "class probabilities, vad = valence/arousal/dominance, embedding = the "
        "classifier's penultimate layer (default: %(default)s)",
    )
    group.add_argument(
        "-k",
        "--neighbors",
        type=int,
        default=15,
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
        default="threshold",
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
        default=0.05,
        metavar="P",
        help="add probability of --novelty-archive random (default: %(default)s)",
    )
    group.add_argument(
        "--novelty-cap",
        type=_int_or_none,
        default=2000,
        metavar="N|none",
        help="novelty-archive size cap, oldest entries dropped first (default: %(default)s)",
    )


def _add_dqd_options(parser: argparse.ArgumentParser) -> None:
    from evoemotion.pipeline import RENDERERS
    from evoemotion.search.dqd import DQD_EMITTERS, GRADIENT_OPTIMIZERS, DqdSearch

    defaults = inspect.signature(DqdSearch).parameters
    group = parser.add_argument_group(
        "differentiable QD (--algorithm dqd; flat CPPN genotypes such as cppn and cppn-hsv; "
        "objective confidence (the default with dqd) or none; not with --workers)"
    )
    group.add_argument(
        "--dqd-emitter",
        choices=DQD_EMITTERS,
        default=defaults["emitter"].default,
        help="cma-mega = CMA-ES over gradient coefficients (2-stage improvement ranking); "
        "cma-maega = the same with CMA-MAE's archive learning rate; omg-mega = archive "
        "elites stepped along random gradient combinations (default: %(default)s). "
        "--emitters sets how many (per-class: at least one per class)",
    )
    group.add_argument(
        "--dqd-sigma",
        type=float,
        default=defaults["sigma"].default,
        help="CMA-MEGA's initial coefficient step sigma0, OMG-MEGA's sigma_g, on unit-length "
        "gradients (default: %(default)s)",
    )
    group.add_argument(
        "--dqd-lr",
        type=float,
        default=defaults["lr"].default,
        help="learning rate of the CMA-MEGA solution point (default: %(default)s)",
    )
    group.add_argument(
        "--dqd-optimizer",
        choices=GRADIENT_OPTIMIZERS,
        default=defaults["optimizer"].default,
        help="optimiser of the CMA-MEGA solution point (default: %(default)s)",
    )
    group.add_argument(
        "--archive-lr",
        type=float,
        default=defaults["archive_lr"].default,
        help="CMA-MAEGA's archive learning rate in (0, 1] (default: %(default)s)",
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
            "emitters": args.emitters,
            "sigma": args.sigma,
            "line_sigma": args.line_sigma,
            "crossover_prob": args.crossover,
        }
    if args.algorithm == "dqd":
        return {
            "emitter": args.dqd_emitter,
            "emitters": args.emitters,
            "sigma": args.dqd_sigma,
            "lr": args.dqd_lr,
            "optimizer": args.dqd_optimizer,
            "archive_lr": args.archive_lr,
        }
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
    from evoemotion.experiment import RunConfig, start_run

    _check_dqd_cluster(args.algorithm, args)
    dqd_objective = "confidence" if args.algorithm == "dqd" else None
    config = RunConfig(
        genotype=args.genotype,
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
    )
    print("evoemotion run: loading the genotype and classifier, building the archive ...")
    run = start_run(config, args.out)
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

    run = resume_run(args.folder, device=args.device)
    iterations = run.config.iterations if args.iterations is None else args.iterations
    print(
        f"evoemotion resume: {run.folder.path} at iteration {run.state.iteration} of {iterations}"
    )
    return _drive(run, iterations, args)


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

    with stop_on_signals() as stop, _evaluator(run, args, stop) as evaluator:
        finished = run_iterations(
            run.folder,
            state,
            evaluator,
            iterations=iterations,
            checkpoint_every=run.config.checkpoint_every,
            stop=stop,
            callback=show,
        )
    bar.close()
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
        elites = len(state.archive)
        with tqdm(total=elites, unit="elite", desc="export", dynamic_ncols=True) as ebar:
            run.folder.export_elites(
                state, size=run.config.export_size, progress=lambda done: ebar.update(done - ebar.n)
            )
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
