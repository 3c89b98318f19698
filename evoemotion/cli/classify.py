"""Commands for emotion models: train, evaluate, classify, compare-representations."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evoemotion.cli.options import add_classifier, add_device, add_seed, add_size, size_or_native
from evoemotion.cli.progress import Bars
from evoemotion.progress import relabelled

#: Datasets used when a command is given no ``--dataset``.
DEFAULT_DATASETS = ["emotion6", "oasis"]


def _unit(stage: str) -> str:
    """The unit of a training or evaluation stage's bar."""
    return "epoch" if stage.endswith("heads") else "step" if "ascent" in stage else "img"


def _add_data_options(parser: argparse.ArgumentParser, default_note: str) -> None:
    parser.add_argument(
        "--dataset",
        action="append",
        metavar="SPEC",
        help="dataset KIND or KIND:PATH, repeatable; kinds: emotion6, oasis, folder:DIR "
        f"(one sub-folder per class), csv:FILE (path + label or valence,arousal[,dominance] "
        f"or text); {default_note}",
    )
    parser.add_argument(
        "--lexicon",
        default=None,
        metavar="PATH|none",
        help="Warriner norms CSV for lexicon-derived dominance (OASIS themes, CSV text); "
        "default: lexicons/warriner2013.csv in the data folder when present",
    )
    parser.add_argument(
        "--strict", action="store_true", help="stop on unreadable images instead of skipping them"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    from_defaults = "(default: %(default)s)"
    parser.add_argument(
        "--backbone", default="efficientnet_lite0_ms", help=f"backbone name {from_defaults}"
    )
    parser.add_argument(
        "--weights",
        default="imagenet",
        help=f"backbone weights: imagenet, none, or a state_dict file {from_defaults}",
    )
    parser.add_argument(
        "--labels",
        choices=("soft", "category", "mixed"),
        default="soft",
        help="categorical targets: soft = the raters' label distributions; category = the "
        "class each image was collected for (Emotion6: its keyword folder, neutral where the "
        "raters' top label is neutral; folder:/csv: datasets: their labels); mixed = "
        f"(1 - MIX) * soft + MIX * category {from_defaults}",
    )
    parser.add_argument(
        "--mix",
        type=float,
        default=0.5,
        help=f"share of the category in --labels mixed targets {from_defaults}",
    )
    parser.add_argument(
        "--balance",
        choices=("none", "weights", "prior"),
        default="none",
        help="class balance of the categorical loss: weights = each class's target mass "
        "weighted by 1 / (K * its training prior); prior = logit adjustment (trained through "
        "logits + log prior, predicting with the logits alone) "
        f"{from_defaults}",
    )
    parser.add_argument(
        "--hidden", type=int, default=128, help=f"head hidden width, 0 = linear {from_defaults}"
    )
    parser.add_argument("--dropout", type=float, default=0.5, help=f"head dropout {from_defaults}")
    parser.add_argument(
        "--members",
        type=int,
        default=1,
        help=f"MLPs per head, trained independently and averaged (an ensemble) {from_defaults}",
    )
    parser.add_argument(
        "--views",
        default="full,flip",
        help="comma-separated training views of each image among full, flip, crop-c, "
        f"crop-tl, crop-tr, crop-bl, crop-br {from_defaults}",
    )
    parser.add_argument(
        "--size",
        type=size_or_native(None),
        default=None,
        help="input side in px to train at; it becomes the model's input size (default: the "
        "backbone's native size)",
    )
    parser.add_argument(
        "--extra-sizes",
        default="",
        help="comma-separated further input sides also trained on (e.g. 128: heads that "
        "score well at that lower resolution too)",
    )
    parser.add_argument("--epochs", type=int, default=300, help=f"max head epochs {from_defaults}")
    parser.add_argument(
        "--lr", type=float, default=2e-3, help=f"head learning rate {from_defaults}"
    )
    parser.add_argument(
        "--l2", type=float, default=0.03, help=f"L2 penalty on head weights {from_defaults}"
    )
    parser.add_argument(
        "--patience", type=int, default=20, help=f"early-stopping patience {from_defaults}"
    )
    parser.add_argument(
        "--refit",
        action="store_true",
        help="after early stopping, train the heads afresh on training + validation images "
        "for the chosen epochs (more data; no validation metrics then)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=512, help=f"head minibatch size {from_defaults}"
    )
    add_seed(parser, what="split and training seed")
    parser.add_argument(
        "--split",
        default="0.7,0.1,0.2",
        help=f"train,val,test fractions of each dataset {from_defaults}",
    )
    parser.add_argument(
        "--finetune", action="store_true", help="also train the whole network (use a GPU)"
    )
    parser.add_argument(
        "--finetune-epochs", type=int, default=3, help=f"fine-tuning epochs {from_defaults}"
    )
    parser.add_argument(
        "--finetune-lr", type=float, default=1e-4, help=f"backbone learning rate {from_defaults}"
    )
    add_device(parser, what="torch device")
    parser.add_argument(
        "--bf16", action="store_true", help="bfloat16 autocast for feature extraction (faster)"
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="feature cache folder (default: $EVOEMOTION_CACHE or ~/.cache/evoemotion/features)",
    )
    parser.add_argument("--no-cache", action="store_true", help="do not cache features")


def register(subparsers) -> None:
    """Add the ``train``, ``evaluate``, ``classify`` and ``compare-representations`` commands."""
    p = subparsers.add_parser(
        "train",
        help="train an emotion model (frozen-backbone heads, or --finetune)",
        description="Train an emotion model on a backbone. Frozen mode caches backbone "
        "features and fits the heads in seconds; the split is fixed by --seed and saved "
        "in the model, with validation and test metrics.",
    )
    p.add_argument(
        "--head",
        action="append",
        metavar="HEAD",
        help="head to train, repeatable or comma-separated: categorical, va, vad, valence, "
        "arousal, dominance (default: categorical,va)",
    )
    _add_training_options(p)
    _add_data_options(p, "default: emotion6 and oasis")
    p.add_argument(
        "--from",
        dest="init",
        default=None,
        metavar="MODEL",
        help="start from a trained model (file or 'default'): keep its backbone, feature "
        "standardisation and the heads not named by --head, and train only the --head heads "
        "on the same split (datasets not given keep their records)",
    )
    p.add_argument(
        "--cv",
        type=int,
        default=None,
        metavar="K",
        help="instead of training one model, cross-validate the recipe in K folds over the "
        "training + validation images (fold k scored, fold k+1 for early stopping; the test "
        "split is never used): prints mean metrics and writes every fold's to --out (JSON)",
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="checkpoint file to write (.pt); with --cv the JSON of fold metrics",
    )
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="DIR",
        help="write the test split's confusion matrices (PNG, one per label view) and "
        "per-class metrics (classes_DATASET.csv / .json) into DIR",
    )
    p.set_defaults(handler=run_train)

    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a model on the test split of datasets",
        description="Evaluate a model on the test split saved in it (a dataset it never saw "
        "is evaluated whole). Categorical: accuracy, top-2, mean KL, and on two label views "
        "(the raters' top label; the category each image was collected for, where the "
        "dataset knows it) per-class recall, precision and F1, balanced accuracy, macro-F1 "
        "and the confusion matrix; regression: MSE, MAE, Pearson r, CCC.",
    )
    p.add_argument("model", help="checkpoint file or 'default'")
    _add_data_options(p, "default: the datasets the model was trained on")
    add_size(p, what="the model's input", default=None, native=None)
    add_device(p, what="torch device")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the backbone")
    p.add_argument("--cache-dir", default=None, help="feature cache folder (default: the usual)")
    p.add_argument(
        "--report",
        "--confusion",
        dest="report",
        type=Path,
        default=None,
        metavar="DIR",
        help="write confusion-matrix PNGs (per dataset and label view: top rater label, "
        "collected-for category) and the per-class recall, precision and F1 with balanced "
        "accuracy and macro-F1 (classes_DATASET.csv / .json) into DIR",
    )
    p.add_argument("--json", type=Path, default=None, help="also write all metrics to a JSON file")
    reach = p.add_argument_group(
        "reachability",
        "with --reachability no dataset is scored: instead every class's highest "
        "probability and every regression output's lowest and highest value reachable by "
        "Adam gradient ascent on images of side --size (default: the model's recommended "
        "scoring size, else 128), over free pixels and over the genomes of a "
        "differentiable genotype; a table, and reachability.csv/.json/.png under --report",
    )
    reach.add_argument(
        "--reachability", action="store_true", help="report what the model's outputs can reach"
    )
    reach.add_argument("--steps", type=int, default=150, help="ascent steps (default: %(default)s)")
    reach.add_argument(
        "--lr", type=float, default=0.05, help="Adam learning rate (default: %(default)s)"
    )
    reach.add_argument(
        "--restarts",
        type=int,
        default=2,
        help="starts per target, the best kept (default: %(default)s)",
    )
    reach.add_argument(
        "--genotype",
        default="cppn",
        help="flat CPPN preset whose genomes are also ascended (rendered with render_torch); "
        "'none' for pixels only (default: %(default)s)",
    )
    reach.add_argument("--seed", type=int, default=0, help="seed of the starts (default: 0)")
    p.set_defaults(handler=run_evaluate)

    p = subparsers.add_parser(
        "classify",
        help="print the emotion distribution and V/A(/D) of images",
        description="Score image files with an emotion model.",
    )
    p.add_argument("images", nargs="+", type=Path, help="image files")
    add_classifier(
        p, dest="model", default="default", help="classifier checkpoint (default: default)"
    )
    add_size(p, what="the model's input", default=None, native=None)
    add_device(p, what="torch device")
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    p.set_defaults(handler=run_classify)

    p = subparsers.add_parser(
        "compare-representations",
        help="train categorical, VA and VAD heads on one split and compare them",
        description="Train a categorical, a VA and a VAD model on the same backbone, data "
        "and split, and print one table of test metrics; targets outside a representation "
        "are predicted through a map fitted on training rows (marked *).",
    )
    _add_training_options(p)
    _add_data_options(p, "default: emotion6 and oasis")
    p.add_argument("--json", type=Path, default=None, help="also write the table to a JSON file")
    p.set_defaults(handler=run_compare)


def _threads(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)


def _load_datasets(args, specs: list[str]) -> list:
    """Load and check the datasets; print one line per skipped image."""
    from evoemotion.emotion.datasets import check_images, load_dataset
    from evoemotion.emotion.lexicon import load_warriner
    from evoemotion.paths import data_root

    lexicon = None
    if args.lexicon != "none":
        path = Path(args.lexicon) if args.lexicon else data_root() / "lexicons" / "warriner2013.csv"
        if args.lexicon or path.is_file():
            lexicon = load_warriner(path)
    datasets = []
    bars = Bars(_unit)
    for spec in specs:
        data = load_dataset(spec, lexicon)
        data, problems = check_images(data, args.strict, relabelled(bars, f"checking {spec}"))
        bars.close()
        for line in problems:
            print(f"skipped: {line}")
        datasets.append(data)
    return datasets


def _sizes(text: str) -> list[int]:
    """Parse ``--extra-sizes``."""
    from evoemotion.errors import ConfigError

    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise ConfigError(f"--extra-sizes {text!r} must be integers like 128,160") from err


def _config(args, heads: list[str]):
    from evoemotion.emotion.train import TrainConfig
    from evoemotion.errors import ConfigError

    try:
        fractions = tuple(float(f) for f in args.split.split(","))
    except ValueError as err:
        raise ConfigError(f"--split {args.split!r} must be three numbers like 0.7,0.1,0.2") from err
    if len(fractions) != 3:
        raise ConfigError(f"--split {args.split!r} must be three numbers like 0.7,0.1,0.2")
    config = TrainConfig(
        backbone=args.backbone,
        weights=args.weights,
        heads=heads,
        labels=args.labels,
        mix=args.mix,
        balance=args.balance,
        hidden=args.hidden,
        dropout=args.dropout,
        members=args.members,
        views=[v.strip() for v in args.views.split(",") if v.strip()],
        size=args.size,
        extra_sizes=_sizes(args.extra_sizes),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        l2=args.l2,
        patience=args.patience,
        refit=args.refit,
        seed=args.seed,
        fractions=fractions,
        finetune=args.finetune,
        finetune_epochs=args.finetune_epochs,
        finetune_lr=args.finetune_lr,
        device=args.device,
        autocast=args.bf16,
        cache_dir="" if args.no_cache else args.cache_dir,
        init=getattr(args, "init", None),
    )
    config.validate()  # before the datasets are read and checked
    return config


def _format_metrics(name: str, metrics: dict) -> list[str]:
    """Readable lines of one dataset's metrics, with a per-class table of both label views."""
    from evoemotion.emotion.evaluate import LABEL_VIEWS

    lines = [f"{name} ({metrics['n']} images)"]
    cat = metrics.get("categorical")
    if cat:
        extra = (
            f"  without neutral {cat['accuracy_without_neutral']:.3f}"
            if "accuracy_without_neutral" in cat
            else ""
        )
        lines.append(
            f"  categorical  accuracy {cat['accuracy']:.3f}  top-2 {cat['top2']:.3f}  "
            f"KL {cat['kl']:.3f}{extra}"
        )
    views = {v: metrics[v] for v in LABEL_VIEWS if v in metrics}
    for view, m in views.items():
        extra = (
            f"  balanced without neutral {m['balanced_accuracy_without_neutral']:.3f}"
            if "balanced_accuracy_without_neutral" in m
            else ""
        )
        lines.append(
            f"  {LABEL_VIEWS[view]:<22}  accuracy {m['accuracy']:.3f}  balanced accuracy "
            f"{m['balanced_accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}{extra}"
        )
    if views:
        header = "".join(f"  | {LABEL_VIEWS[v]:<26}" for v in views)
        lines.append(f"  {'class':<10}{header}")
        columns = f"  | {'n':>4} {'recall':>7} {'prec.':>6} {'F1':>6}"
        lines.append(f"  {'':<10}" + columns * len(views))
        for cls in next(iter(views.values()))["per_class"]:
            cells = "".join(
                "  | {support:>4} {recall:>7.3f} {precision:>6.3f} {f1:>6.3f}".format(
                    **m["per_class"][cls]
                )
                for m in views.values()
            )
            lines.append(f"  {cls:<10}{cells}")
    for dim in ("valence", "arousal", "dominance"):
        if dim in metrics:
            m = metrics[dim]
            lines.append(
                f"  {dim:<11}  MSE {m['mse']:.3f}  MAE {m['mae']:.3f}  r {m['pearson_r']:.3f}  "
                f"CCC {m['ccc']:.3f}  (n={m['n']})"
            )
    if "va_mse" in metrics:
        lines.append(f"  VA MSE (mean of valence and arousal) {metrics['va_mse']:.3f}")
    return lines


def _save_report(metrics: dict, name: str, folder: Path, class_names: list[str], title: str):
    """Write one dataset's confusion-matrix PNGs and per-class CSV/JSON; return the paths."""
    from evoemotion.emotion.evaluate import save_class_report, save_confusion_png

    paths = []
    for view, suffix, ylabel in (
        ("categorical", "", "top rater label"),
        ("category", "_category", "collected-for category"),
    ):
        if view in metrics:
            paths.append(
                save_confusion_png(
                    metrics[view]["confusion"],
                    class_names,
                    folder / f"confusion_{name}{suffix}.png",
                    title=title,
                    ylabel=ylabel,
                )
            )
    return paths + save_class_report(metrics, folder / f"classes_{name}")


def run_train(args) -> int:
    """Handler of ``evoemotion train``."""
    from evoemotion.emotion import save_model
    from evoemotion.emotion.train import train

    _threads(args)
    heads = [h.strip() for spec in (args.head or ["categorical,va"]) for h in spec.split(",")]
    config = _config(args, [h for h in heads if h])
    specs = args.dataset or DEFAULT_DATASETS
    datasets = _load_datasets(args, specs)
    bars = Bars(_unit)
    if args.cv:
        return _run_cv(datasets, config, args.cv, args.out, bars)
    model = train(datasets, config, specs=specs, progress=bars)
    bars.close()
    path = save_model(model.cpu(), args.out)
    for name, metrics in model.metadata["metrics"]["test"].items():
        print("\n".join(_format_metrics(f"test split of {name}", metrics)))
        if args.report:
            title = f"test split of {name}: {args.out.name}"
            for written in _save_report(metrics, name, args.report, model.class_names, title):
                print(f"  wrote {written}")
    print(f"wrote {path} (sha256 {model.identity[:16]})")
    return 0


def _run_cv(datasets: list, config, folds: int, out: Path, bars: Bars) -> int:
    """Cross-validate a recipe, print the mean of each summary metric, write the JSON."""
    from evoemotion.atomic import atomic_write
    from evoemotion.emotion.train import cross_validate, summary_metrics

    result = cross_validate(datasets, config, folds, progress=bars)
    bars.close()
    for key, per_data in result["mean"].items():
        for name, summary in per_data.items():
            print(f"{folds}-fold cross-validation, {name}, {key} (mean over folds):")
            rounds = [summary_metrics(r[key][name]) for r in result["folds"]]
            for metric, value in summary.items():
                folds_text = " ".join(f"{r[metric]:.3f}" for r in rounds)
                print(f"  {metric:<45} {value:7.3f}   folds: {folds_text}")
    atomic_write(out, json.dumps(result, indent=2).encode())
    print(f"wrote {out}")
    return 0


def run_evaluate(args) -> int:
    """Handler of ``evoemotion evaluate``."""
    from evoemotion.emotion import load_model
    from evoemotion.emotion.evaluate import evaluate_rows, held_out_rows

    _threads(args)
    model = load_model(args.model, device=args.device)
    if args.reachability:
        return _run_reachability(model, args)
    specs = args.dataset or model.metadata.get("data", {}).get("specs") or DEFAULT_DATASETS
    results = {}
    bars = Bars(_unit)
    for data in _load_datasets(args, specs):
        rows = held_out_rows(model, data)
        seen = data.name in model.metadata.get("split", {}).get("datasets", {})
        label = f"{data.name} test split" if seen else f"{data.name} (unseen, all rows)"
        results[data.name] = evaluate_rows(
            model,
            data,
            rows,
            size=args.size,
            autocast=args.bf16,
            cache_dir=args.cache_dir,
            progress=relabelled(bars, f"scoring {label}"),
        )
        bars.close()
        print("\n".join(_format_metrics(label, results[data.name])))
        if args.report:
            title = f"{label}: {Path(str(args.model)).name}"
            for written in _save_report(
                results[data.name], data.name, args.report, model.class_names, title
            ):
                print(f"  wrote {written}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _run_reachability(model, args) -> int:
    """``evaluate --reachability``: ascend every output over pixels and genomes; report."""
    import numpy as np

    from evoemotion.emotion.reachability import (
        genome_ascent,
        pixel_ascent,
        reachability_table,
    )
    from evoemotion.errors import ConfigError

    size = args.size or model.metadata.get("recommended_scoring_size") or 128
    if args.steps < 1 or args.restarts < 1:
        raise ConfigError(f"--steps {args.steps} and --restarts {args.restarts} must be >= 1")
    genotype = None
    if args.genotype != "none":  # a bad preset fails here, before any ascent
        from evoemotion.genotypes import load_genotype
        from evoemotion.render.differentiable import check_differentiable, render_torch

        genotype = load_genotype(args.genotype)
        check_differentiable(genotype)
    bars = Bars(_unit)
    results = {
        "pixels": pixel_ascent(
            model,
            size,
            args.steps,
            args.lr,
            args.restarts,
            args.seed,
            relabelled(bars, f"pixel ascent at {size} px"),
        )
    }
    bars.close()
    if genotype is not None:
        starts = np.stack(genotype.random(np.random.default_rng(args.seed), args.restarts))
        results[genotype.name] = genome_ascent(
            model,
            lambda genomes: render_torch(genotype, genomes, size),
            starts,
            genotype.bounds,
            size,
            args.steps,
            args.lr,
            relabelled(bars, f"{genotype.name} ascent at {size} px"),
        )
        bars.close()
    table = reachability_table(results)
    kinds = list(results)
    print(
        f"reachable outputs of {Path(str(args.model)).name} at {size} px "
        f"({args.steps} Adam steps, lr {args.lr}, best of {args.restarts} starts)"
    )
    print(f"  {'output':<12}{'':<5}" + "".join(f"{k:>12}" for k in kinds))
    for row in table:
        cells = "".join(f"{row[k]:12.3f}" for k in kinds)
        print(f"  {row['output']:<12}{row['direction']:<5}{cells}")
    if args.report:
        for written in _save_reachability(results, table, args, size):
            print(f"  wrote {written}")
    return 0


def _save_reachability(results: dict, table: list[dict], args, size: int) -> list[Path]:
    """Write reachability.csv, .json and a PNG of the best image of every target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from evoemotion.atomic import atomic_write

    kinds = list(results)
    lines = ["output,direction," + ",".join(kinds)]
    lines += [
        f"{r['output']},{r['direction']}," + ",".join(f"{r[k]:.6g}" for k in kinds) for r in table
    ]
    folder = args.report
    csv_path, json_path, png_path = (folder / f"reachability.{e}" for e in ("csv", "json", "png"))
    atomic_write(csv_path, ("\n".join(lines) + "\n").encode())
    record = {
        "model": str(args.model),
        "size": size,
        "steps": args.steps,
        "lr": args.lr,
        "restarts": args.restarts,
        "seed": args.seed,
        "table": table,
    }
    atomic_write(json_path, json.dumps(record, indent=2).encode())
    columns = len(table)
    fig, axes = plt.subplots(
        len(kinds), columns, figsize=(1.3 * columns, 1.5 * len(kinds)), squeeze=False
    )
    for i, kind in enumerate(kinds):
        for j, reached in enumerate(results[kind]):
            ax = axes[i][j]
            ax.imshow(reached.image)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{reached.target.name}\n{reached.value:.2f}", fontsize=7)
        axes[i][0].set_ylabel(kind, fontsize=8)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return [csv_path, json_path, png_path]


def run_classify(args) -> int:
    """Handler of ``evoemotion classify``."""
    import numpy as np
    import torch

    from evoemotion.emotion import load_model
    from evoemotion.emotion.datasets import read_image

    model = load_model(args.model, device=args.device)
    device = model.feature_mean.device
    for path in args.images:
        image = read_image(path)
        with torch.no_grad():
            out = model(model.preprocess(torch.from_numpy(image)[None].to(device), args.size))
        result = {"image": str(path)}
        if model.class_names:
            probs = out["probs"][0].cpu().numpy()
            result.update(
                {c: round(float(p), 4) for c, p in zip(model.class_names, probs, strict=True)}
            )
        result.update({n: round(float(out[n][0]), 3) for n in model.regression_names})
        if args.json:
            print(json.dumps(result))
            continue
        parts = []
        if model.class_names:
            order = np.argsort(-probs)
            parts.append("  ".join(f"{model.class_names[i]} {probs[i]:.2f}" for i in order))
        parts += [f"{n[0].upper()} {result[n]:.2f}" for n in model.regression_names]
        print(f"{path}: " + "  |  ".join(parts))
    return 0


def run_compare(args) -> int:
    """Handler of ``evoemotion compare-representations``."""
    from evoemotion.emotion.compare import compare_representations

    _threads(args)
    specs = args.dataset or DEFAULT_DATASETS
    datasets = _load_datasets(args, specs)
    bars = Bars(_unit)
    table = compare_representations(datasets, _config(args, []), progress=bars)
    bars.close()
    columns = [
        ("accuracy", "acc"),
        ("top2", "top-2"),
        ("kl", "KL"),
        ("valence_mse", "V MSE"),
        ("valence_r", "V r"),
        ("arousal_mse", "A MSE"),
        ("arousal_r", "A r"),
        ("dominance_mse", "D MSE"),
        ("dominance_r", "D r"),
    ]
    print(f"test split, {args.backbone}, seed {args.seed}; * = predicted through a fitted map")
    print(f"{'representation':<15}" + "".join(f"{title:>9}" for _, title in columns))
    for row in table:
        cells = []
        for key, _ in columns:
            target = "probs" if key in ("accuracy", "top2", "kl") else key.rsplit("_", 1)[0]
            mark = "*" if target in row["mapped"] else " "
            value = row.get(key)
            cells.append(f"{value:8.3f}{mark}" if value is not None else f"{'-':>8} ")
        print(f"{row['representation']:<15}" + "".join(cells))
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))
    return 0
