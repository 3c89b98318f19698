"""Commands ``cgen train | sample | evaluate``: the conditional CPPN generator."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from evoemotion.cgen.config import (
    DIVERSITY_SPACES,
    FIT_LOSSES,
    RENDERERS,
    Architecture,
    GeneratorTrainConfig,
    Refinement,
)
from evoemotion.cli.options import add_classifier, add_device, add_seed, add_size
from evoemotion.cli.progress import Bars

#: Option names fixed when training starts (``--resume`` takes them from the checkpoint);
#: ``seed`` belongs to both (it seeds the initial weights and the training draws).
_TRAIN_FIELDS = [f.name for f in fields(GeneratorTrainConfig)]
_ARCH_FIELDS = [f.name for f in fields(Architecture) if f.name not in ("seed", "coord_scale")]


def _grid(text: str) -> tuple[int, int]:
    try:
        columns, rows = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected COLUMNSxROWS like 8x8, got {text!r}") from None
    if columns < 1 or rows < 1:
        raise argparse.ArgumentTypeError(f"expected positive COLUMNSxROWS, got {text!r}")
    return columns, rows


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``cgen`` command group (train, sample, evaluate).

    Args:
        subparsers: The top-level sub-parser collection.
    """
    cgen = subparsers.add_parser(
        "cgen",
        help="conditional CPPN generator: train, sample, evaluate",
        description="A conditional CPPN generator: per pixel (x, y, r), a latent z and a "
        "target emotion -> RGB, trained with no images through a frozen classifier so that "
        "its prediction matches the target (valence-arousal(-dominance) or a one-hot "
        "emotion).",
    )
    commands = cgen.add_subparsers(dest="cgen_command", metavar="COMMAND", required=True)
    _register_train(commands)
    _register_sample(commands)
    _register_evaluate(commands)


def _add_device(parser: argparse.ArgumentParser) -> None:
    add_device(parser, what="torch device")


def _unit(stage: str) -> str:
    """Progress bar unit: refinement counts steps, rendering and evaluation images."""
    return "step" if stage == "refine" else "img"


def _add_refine(parser: argparse.ArgumentParser, *, timed: bool = False) -> None:
    group = parser.add_argument_group(
        "refinement",
        "test-time refinement: Adam steps on each image's CPPN weights through the "
        "classifier, "
        "towards its target, the generator's weights unchanged"
        + ("; each image stops once it is on target" if timed else ""),
    )
    group.add_argument(
        "--refine",
        type=int,
        default=0,
        metavar="STEPS",
        help="refinement steps per image (and per restart), 0 = the samples as drawn "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--refine-lr",
        type=float,
        default=Refinement.lr,
        help="Adam learning rate of the refinement (default: %(default)s)",
    )
    group.add_argument(
        "--refine-patience",
        type=int,
        default=Refinement.patience,
        help="an image stops once this many steps in a row have not lowered its loss, "
        "0 = never (default: %(default)s)",
    )
    group.add_argument(
        "--refine-candidates",
        type=int,
        default=Refinement.candidates,
        help="each image starts from the best of this many latents (scored once, no "
        "gradient; its own latent among them), as does each restart; 1 = the latent as "
        "drawn (default: %(default)s)",
    )
    if timed:
        group.add_argument(
            "--refine-restarts",
            type=int,
            default=Refinement.restarts,
            help="an image that stops without reaching its target starts again from a fresh "
            "latent, up to this many times, where another image has reached that target "
            "(default: %(default)s)",
        )
        group.add_argument(
            "--refine-borrow",
            action=argparse.BooleanOptionalAction,
            default=Refinement.borrow,
            help="a stopped image whose target no image has reached yet starts again (a "
            "restart) from an on-target image of the nearest reached target within 1.5 grid "
            "steps, so the reached cells grow outwards (default: on)",
        )
        group.add_argument(
            "--refine-distinct",
            type=float,
            default=Refinement.distinct,
            help="an on-target image within this cosine distance (classifier embedding) of "
            "an image of the same target already on target is not done: a hinge pushes it "
            "away, and it restarts if it stalls; 0 = twins count (default: %(default)s)",
        )
        group.add_argument(
            "--refine-width",
            type=int,
            default=Refinement.width,
            help="images stepped at a time, the others waiting: images of targets already "
            "reached first, then those nearest their targets (default: %(default)s)",
        )
        group.add_argument(
            "--refine-seconds",
            type=float,
            default=None,
            help="stop refining after the step that passes this wall-clock (default: no limit)",
        )


def _refinement(
    args: argparse.Namespace,
    checkpoint: Any,
    model: Any,
    size: int | None = None,
    classifier_size: int | None = None,
) -> Any:
    """The :class:`Refinement` the --refine options ask for (None without --refine): the
    generator's own fit loss, and its training sizes unless ``size`` / ``classifier_size``
    are given (a classifier size of 0, native, is the model's input size)."""
    if not args.refine:
        return None
    train = GeneratorTrainConfig.from_dict((checkpoint.training or {}).get("config", {}))
    return Refinement(
        steps=args.refine,
        lr=args.refine_lr,
        seconds=getattr(args, "refine_seconds", None),
        patience=args.refine_patience,
        restarts=getattr(args, "refine_restarts", 0),
        borrow=getattr(args, "refine_borrow", False),
        distinct=getattr(args, "refine_distinct", Refinement.distinct),
        candidates=args.refine_candidates,
        width=getattr(args, "refine_width", Refinement.width),
        size=size or train.train_size,
        classifier_size=classifier_size or train.classifier_size or int(model.input_size),
        fit_loss=train.fit_loss,
    )


def _register_train(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train a generator through a frozen classifier",
        description="Train a conditional generator by gradient descent through a frozen "
        "classifier: loss = error between target and prediction (cross-entropy for "
        "categorical) + a mode-seeking diversity term over latents. Writes OUT atomically "
        "every --checkpoint-every steps, at the end and on Ctrl-C; --resume continues it. "
        "Training and architecture options are fixed at the start: on --resume they come "
        "from the checkpoint.",
    )
    add_classifier(
        train,
        help="classifier checkpoint or 'default' (default: default, or the "
        "recorded one on --resume)",
    )
    train.add_argument(
        "--target",
        choices=["va", "vad", "categorical"],
        default=None,
        help="what the condition is: va / vad = a point on the classifier's "
        "valence-arousal(-dominance) scale, categorical = one emotion class "
        "(required unless --resume)",
    )
    train.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="GEN.pt",
        help="generator checkpoint to write (and to continue with --resume)",
    )
    train.add_argument(
        "--steps",
        type=int,
        default=None,
        help="total optimisation steps to reach (default: 1000, or the recorded total on --resume)",
    )
    train.add_argument(
        "--resume", action="store_true", help="continue training the checkpoint at --out"
    )
    train.add_argument(
        "--force", action="store_true", help="start afresh even if --out exists (overwrites it)"
    )
    train.add_argument(
        "--checkpoint-every",
        type=int,
        default=50,
        metavar="K",
        help="write the checkpoint every K steps (default: %(default)s)",
    )
    _add_device(train)
    t, a = GeneratorTrainConfig(), Architecture()
    opts = train.add_argument_group("training options (fixed at the start)")
    opts.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"targets per step, each drawn with 2 latents (default: {t.batch_size})",
    )
    opts.add_argument(
        "--lr", type=float, default=None, help=f"Adam learning rate (default: {t.lr})"
    )
    opts.add_argument(
        "--grad-clip",
        type=float,
        default=None,
        help=f"largest gradient norm of a step, 0 = no clipping (default: {t.grad_clip})",
    )
    opts.add_argument(
        "--diversity-weight",
        type=float,
        default=None,
        help=f"weight of the mode-seeking diversity term, 0 = off (default: {t.diversity_weight})",
    )
    opts.add_argument(
        "--saturation-weight",
        type=float,
        default=None,
        help="weight of the penalty on output pre-activations past the sigmoid's flat ends "
        f"(colour levels < 5 or > 250), 0 = off (default: {t.saturation_weight})",
    )
    opts.add_argument(
        "--crops",
        type=int,
        default=None,
        help="random crops per image whose classifier outputs are averaged "
        f"(anti-fooling; default: {t.crops} = whole image)",
    )
    opts.add_argument(
        "--crop-min",
        type=float,
        default=None,
        help=f"smallest crop side as a fraction of the image side (default: {t.crop_min})",
    )
    opts.add_argument(
        "--train-size",
        type=int,
        default=None,
        help=f"side in px of the images drawn while training (default: {t.train_size})",
    )
    add_size(
        opts,
        "--classifier-size",
        what="what the classifier sees while training",
        default=None,
        native=0,
        shown=f"{t.classifier_size}, as evoemotion run scores",
    )
    opts.add_argument(
        "--reach-bins",
        type=int,
        default=None,
        metavar="B",
        help="cells per axis of the map of reachable targets: targets are drawn from cells "
        "the classifier's ratings have reached and their neighbours, favouring those the "
        f"generator does not hit yet; 0 = uniform targets (default: {t.reach_bins})",
    )
    opts.add_argument(
        "--explore",
        type=float,
        default=None,
        help="share of targets drawn uniformly over the scale despite the map "
        f"(default: {t.explore})",
    )
    opts.add_argument(
        "--fit-loss",
        choices=FIT_LOSSES,
        default=None,
        help="va/vad error per target: mse = squared, distance = Euclidean (every target "
        f"pulls equally) (default: {t.fit_loss})",
    )
    opts.add_argument(
        "--diversity-space",
        choices=DIVERSITY_SPACES,
        default=None,
        help="where the mode-seeking term measures the difference of two images: pixels, "
        f"or the classifier's embedding (default: {t.diversity_space})",
    )
    add_seed(
        opts,
        what="seed of the initial weights, targets, latents and crops",
        default=None,
        shown=t.seed,
    )
    arch = train.add_argument_group("architecture (fixed at the start)")
    arch.add_argument(
        "--latent-dim",
        type=int,
        default=None,
        help=f"width of the latent z (default: {a.latent_dim})",
    )
    arch.add_argument(
        "--hidden", type=int, default=None, help=f"units per hidden layer (default: {a.hidden})"
    )
    arch.add_argument("--depth", type=int, default=None, help=f"hidden layers (default: {a.depth})")
    arch.add_argument(
        "--embed-dim",
        type=int,
        default=None,
        help=f"width of the per-image embedding of (z, condition) (default: {a.embed_dim})",
    )
    arch.add_argument(
        "--condition-cells",
        type=int,
        default=None,
        metavar="N",
        help="va/vad: N nodes per axis of a learned embedding offset, interpolated over the "
        "target space, giving each region parameters of its own; 0 = none "
        f"(default: {a.condition_cells})",
    )
    arch.add_argument(
        "--activations",
        default=None,
        metavar="A,B,...",
        help="hidden activations, units split evenly among them; from sin, cos, "
        f"gauss, sigmoid, tanh, abs, identity (default: "
        f"{','.join(a.activations)})",
    )
    train.set_defaults(handler=train_command)


def _register_sample(commands: argparse._SubParsersAction) -> None:
    sample = commands.add_parser(
        "sample",
        help="render a grid over the target space, or images for one target",
        description="Render a trained generator at any resolution. Without --target: a grid "
        "over the target space (va/vad: valence left to right, arousal bottom to top, one "
        "latent for all cells unless --vary-latent; categorical: one row per emotion, one "
        "latent per column). With --target: --count images for that target in a row.",
    )
    sample.add_argument("generator", type=Path, metavar="GEN.pt", help="generator checkpoint")
    sample.add_argument(
        "-o", "--output", type=Path, required=True, metavar="PNG", help="PNG file to write"
    )
    sample.add_argument(
        "--grid",
        type=_grid,
        default=(8, 8),
        metavar="COLSxROWS",
        help="va/vad: valence x arousal cells; categorical: COLS latents per "
        "emotion row, ROWS unused (default: 8x8)",
    )
    sample.add_argument(
        "--target",
        default=None,
        metavar="V,A[,D]|EMOTION",
        help="one target instead of a grid: numbers on the classifier's scale "
        "(e.g. 7,3) or an emotion name (e.g. joy)",
    )
    sample.add_argument(
        "--count",
        type=int,
        default=1,
        help="images for --target, one latent each (default: %(default)s)",
    )
    add_size(sample, what="each image", default=256)
    add_seed(sample, what="seed of the latents")
    sample.add_argument(
        "--vary-latent", action="store_true", help="va/vad grid: a different latent in every cell"
    )
    sample.add_argument(
        "--dominance",
        type=float,
        default=None,
        help="vad grid: the dominance of every cell (default: mid-scale)",
    )
    sample.add_argument(
        "--gap", type=int, default=2, help="white pixels between grid images (default: %(default)s)"
    )
    sample.add_argument(
        "--renderer",
        choices=RENDERERS,
        default="auto",
        help="numba: the images as CPPN node programs through the Numba renderer (parallel, "
        "fast on a CPU; colours within a level or two of 255 of torch's); torch: the network "
        "itself on --device; auto: numba when --device is the CPU (default: %(default)s)",
    )
    add_classifier(
        sample,
        help="classifier for --refine (default: the one recorded in GEN.pt; it must be the "
        "one the generator was trained against)",
    )
    _add_refine(sample)
    _add_device(sample)
    sample.set_defaults(handler=sample_command)


def _register_evaluate(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="score a generator on the MAP-Elites archive's target cells",
        description="Render every cell centre of the va/vad MAP-Elites archive grid (or "
        "every class) with several latents, score the images as a run does, and report the "
        "mean absolute target error (categorical: target-class probability), diversity "
        "across latents, the fraction of targets reached within the tolerance and the "
        "archive coverage of the generated images.",
    )
    evaluate.add_argument("generator", type=Path, metavar="GEN.pt", help="generator checkpoint")
    add_classifier(
        evaluate,
        help="classifier checkpoint (default: the one recorded in GEN.pt; it "
        "must be the one the generator was trained against)",
    )
    evaluate.add_argument(
        "--cells",
        type=int,
        default=None,
        help="bins per axis of the va/vad grid (default: the archive's, va 20, vad 10)",
    )
    evaluate.add_argument(
        "--latents", type=int, default=4, help="images per target (default: %(default)s)"
    )
    add_size(
        evaluate, what="the rendered images", default=64, shown="64, as evoemotion run renders"
    )
    evaluate.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="va/vad: largest per-axis error that counts as reaching the "
        "target (default: inside the target's archive cell); categorical: "
        "smallest target-class probability (default: 0.5)",
    )
    evaluate.add_argument(
        "--crops",
        type=int,
        default=1,
        help="deterministic crops averaged by the scorer, 1-10 (default: %(default)s)",
    )
    add_size(
        evaluate,
        "--score-size",
        what="what the classifier sees",
        default=128,
        native=None,
        shown="128, as evoemotion run scores",
    )
    add_seed(evaluate, what="seed of the latents")
    _add_refine(evaluate, timed=True)
    evaluate.add_argument(
        "--compare",
        type=Path,
        action="append",
        default=[],
        metavar="RUN_FOLDER",
        help="a va/vad search run folder (MAP-Elites, DQD, ...): evaluate on its archive grid "
        "and report the share of the cells it filled that the generator reaches on target; "
        "reads config.json and elites.csv only (repeatable)",
    )
    evaluate.add_argument(
        "--csv", type=Path, default=None, help="write one row per target to this CSV file"
    )
    evaluate.add_argument(
        "--json", type=Path, default=None, help="write the summary to this JSON file"
    )
    _add_device(evaluate)
    evaluate.set_defaults(handler=evaluate_command)


def _explicit(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """The options among ``names`` that the user gave."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _new_trainer(args: argparse.Namespace, device: Any) -> tuple[Any, str]:
    from evoemotion.cgen import ConditionalGenerator, TargetSpace, Trainer
    from evoemotion.emotion import load_model
    from evoemotion.errors import ConfigError

    if args.target is None:
        raise ConfigError("--target va|vad|categorical is required to start training")
    if args.out.exists() and not args.force:
        raise ConfigError(
            f"{args.out} exists: add --resume to continue it or --force to start afresh"
        )
    source = args.classifier or "default"
    model = load_model(source, device=device)
    config = GeneratorTrainConfig(**_explicit(args, _TRAIN_FIELDS))
    arch = _explicit(args, _ARCH_FIELDS)
    if "activations" in arch:
        arch["activations"] = tuple(a.strip() for a in arch["activations"].split(",") if a.strip())
    generator = ConditionalGenerator(
        TargetSpace.from_model(model, args.target), Architecture(seed=config.seed, **arch)
    )
    return Trainer(generator, model, config, device=device), source


def _resumed_trainer(args: argparse.Namespace, device: Any) -> tuple[Any, str]:
    from evoemotion.cgen import load_generator, resume_trainer
    from evoemotion.emotion import load_model
    from evoemotion.errors import ConfigError

    fixed = sorted(_explicit(args, _TRAIN_FIELDS + _ARCH_FIELDS))
    if fixed or args.target is not None or args.force:
        given = ", ".join(
            "--" + name.replace("_", "-")
            for name in fixed + ["target"] * (args.target is not None) + ["force"] * args.force
        )
        raise ConfigError(
            f"{given} cannot be combined with --resume: the checkpoint's own options apply"
        )
    checkpoint = load_generator(args.out, device=device)
    source = args.classifier or checkpoint.classifier["source"]
    trainer = resume_trainer(checkpoint, load_model(source, device=device), device=device)
    return trainer, source


def train_command(args: argparse.Namespace) -> int:
    """Handle ``evoemotion cgen train``."""
    from tqdm import tqdm

    from evoemotion.cgen import train
    from evoemotion.runs import stop_on_signals
    from evoemotion.scoring import resolve_device

    device = resolve_device(args.device)
    trainer, source = (_resumed_trainer if args.resume else _new_trainer)(args, device)
    steps = args.steps if args.steps is not None else trainer.total_steps or 1000
    space = trainer.generator.space
    print(
        f"evoemotion cgen train: {space.kind} generator ({', '.join(space.names)}) against "
        f"{source} on {device}; step {trainer.step} of {steps}"
    )
    bar = tqdm(
        total=steps, initial=min(trainer.step, steps), unit="step", desc="train", dynamic_ncols=True
    )

    def show(metrics: dict[str, float]) -> None:
        key = "target_prob" if space.categorical else "error"
        bar.set_postfix(
            {
                "loss": f"{metrics['loss']:.4f}",
                key: f"{metrics[key]:.3f}",
                "diversity": f"{metrics['diversity']:.3f}",
            },
            refresh=False,
        )
        bar.update(1)

    with stop_on_signals() as stop:
        finished = train(
            trainer,
            steps,
            checkpoint=args.out,
            checkpoint_every=args.checkpoint_every,
            classifier_source=source,
            callback=show,
            should_stop=stop.is_set,
        )
    bar.close()
    if not finished:
        print(
            f"evoemotion cgen train: stopped at step {trainer.step}; checkpoint saved. "
            f"Continue with: evoemotion cgen train --resume --out {args.out}"
        )
        return 130
    print(f"evoemotion cgen train: done, {trainer.step} steps; wrote {args.out}")
    return 0


def sample_command(args: argparse.Namespace) -> int:
    """Handle ``evoemotion cgen sample``."""
    from evoemotion.cgen import load_generator, render_targets, sample_grid
    from evoemotion.errors import ConfigError
    from evoemotion.render.images import grid, save_png
    from evoemotion.scoring import resolve_device

    if args.size < 1 or args.count < 1:
        raise ConfigError(f"--size and --count must be positive, got {args.size}, {args.count}")
    device = resolve_device(args.device)
    checkpoint = load_generator(args.generator, device=device)
    generator = checkpoint.generator
    space = generator.space
    columns, rows = args.grid
    model, refinement = None, None
    if args.refine:
        from evoemotion.emotion import load_model

        model = load_model(args.classifier or checkpoint.classifier["source"], device=device)
        checkpoint.check_classifier(model)
        refinement = _refinement(args, checkpoint, model)
    with Bars(_unit, leave=False) as progress:
        if args.target is not None:
            target = space.parse(args.target)
            images = render_targets(
                generator,
                target.repeat(args.count, axis=0),
                generator.latents(args.count, args.seed),
                args.size,
                progress,
                renderer=args.renderer,
                model=model,
                refinement=refinement,
            )
            columns = args.count
            layout = f"{args.count} image(s) for target {args.target}"
        else:
            images = sample_grid(
                generator,
                columns,
                rows,
                args.size,
                seed=args.seed,
                shared_latent=not args.vary_latent,
                dominance=args.dominance,
                progress=progress,
                renderer=args.renderer,
                model=model,
                refinement=refinement,
            )
            layout = _describe_grid(space, columns, rows)
    image = images[0] if len(images) == 1 else grid(images, columns=columns, gap=args.gap)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_png(args.output, image)
    refined = f"; each image refined {args.refine} steps" if args.refine else ""
    print(f"wrote {args.output} ({image.shape[1]}x{image.shape[0]}): {layout}{refined}")
    return 0


def _describe_grid(space: Any, columns: int, rows: int) -> str:
    if space.categorical:
        return f"rows = {', '.join(space.names)}; {columns} latents per row"
    (vlo, vhi), (alo, ahi) = space.scales[:2]
    return (
        f"{columns} columns of valence {vlo:g}..{vhi:g} (left to right) x {rows} rows of "
        f"arousal {ahi:g}..{alo:g} (top to bottom)"
    )


def evaluate_command(args: argparse.Namespace) -> int:
    """Handle ``evoemotion cgen evaluate``."""
    from evoemotion.atomic import atomic_write
    from evoemotion.cgen import evaluate, load_generator
    from evoemotion.cgen.comparison import compare_with_run, read_run_cells
    from evoemotion.emotion import load_model
    from evoemotion.errors import ConfigError
    from evoemotion.scoring import Scorer, resolve_device

    runs = [read_run_cells(folder) for folder in args.compare]
    if runs and args.cells is not None:
        raise ConfigError("--compare evaluates on the run's own grid: drop --cells")
    specs = {json.dumps(run.spec.to_dict(), sort_keys=True): run.spec for run in runs}
    if len(specs) > 1:
        raise ConfigError("the --compare runs have different archive grids; compare one at a time")
    device = resolve_device(args.device)
    checkpoint = load_generator(args.generator, device=device)
    for run in runs:
        if run.classifier != checkpoint.classifier["identity"]:
            raise ConfigError(
                f"{run.path} was scored by classifier {run.classifier[:12]}, the generator "
                f"trained against {checkpoint.classifier['identity'][:12]}: cells differ"
            )
    source = args.classifier or checkpoint.classifier["source"]
    model = load_model(source, device=device)
    checkpoint.check_classifier(model)
    scorer = Scorer([model], device=device, crops=args.crops, size=args.score_size or None)
    refinement = _refinement(args, checkpoint, model, args.size, args.score_size)
    with Bars(_unit, leave=False) as progress:
        result = evaluate(
            checkpoint.generator,
            scorer,
            cells=args.cells,
            latents=args.latents,
            size=args.size,
            tolerance=args.tolerance,
            seed=args.seed,
            spec=next(iter(specs.values()), None),
            progress=progress,
            refinement=refinement,
        )
    summary = result.summary()
    rows = result.rows()
    comparisons = [compare_with_run(result, run) for run in runs]
    print(f"{args.generator} ({result.kind}, {checkpoint.steps} steps) against {source}:")
    _print_cells(result, rows)
    width = max(len(name) for name in summary)
    for name, value in summary.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"  {name:<{width}}  {shown}")
    for c in comparisons:
        print(
            f"  vs {c['algorithm']} run {c['run']}: reaches {c['reached']} of its "
            f"{c['run_cells']} cells on target ({c['share']:.1%}); images in "
            f"{c['covered']} of them; {c['generator_only']} reached cells it did not fill"
        )
    if args.csv is not None:
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.csv, buffer.getvalue().encode())
        print(f"wrote {args.csv}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "generator": str(args.generator),
            "classifier": source,
            "summary": summary,
            "refinement": refinement.to_dict() if refinement else None,
            "archive": result.archive,
            "compare": comparisons,
            "targets": rows,
        }
        atomic_write(args.json, json.dumps(document, indent=2).encode())
        print(f"wrote {args.json}")
    return 0


def _print_cells(result: Any, rows: list[dict[str, Any]]) -> None:
    """Per target: a map of on-target images over a va grid, or a table per class."""
    latents = result.hits.shape[1]
    if result.kind == "categorical":
        print(f"  {'emotion':<12} p(target)  max p  hits/{latents}  distinct  emb.div")
        for row, probs in zip(rows, result.predictions, strict=True):
            best = probs[:, result.names.index(row["target"])].max()
            print(
                f"  {row['target']:<12} {row['target_prob']:9.3f}  {best:5.3f}  "
                f"{row['hits']:>6}  {row['distinct_hits']:>8}  {row['diversity_embedding']:7.3f}"
            )
        return
    if result.kind != "va":
        print("  (per-cell rows: --csv)")
        return
    columns, rows_count = result.archive["dims"]
    hits = result.hits.sum(axis=1).reshape(columns, rows_count)
    (vlo, vhi), (alo, ahi) = result.archive["ranges"]
    print(
        f"  on-target images per cell (of {latents}; '.' = none): valence {vlo:g}..{vhi:g} "
        f"left to right, arousal {ahi:g}..{alo:g} top to bottom"
    )
    for a in reversed(range(rows_count)):
        print("    " + " ".join(str(int(h)) if h else "." for h in hits[:, a]))
