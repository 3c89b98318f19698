"""Commands ``plot``, ``analyze`` and ``gallery`` on run folders; ``render RUN`` posters.

All of them read the run's latest data snapshot (``archive.npz``, written beside every
checkpoint), never the pickled checkpoint: they work on a half-finished run and are safe
on run folders from anyone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evoemotion.cli.options import add_device, add_size, positive_int
from evoemotion.cli.progress import Bars
from evoemotion.progress import relabelled

FORMAT_HELP = "figure format: png, svg or pdf (default: %(default)s)"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``plot``, ``analyze`` and ``gallery`` commands.

    Args:
        subparsers: The top-level sub-parser collection.
    """
    plot = subparsers.add_parser(
        "plot",
        help="draw a run's elites as mosaics, its objective heatmap and metric curves",
        description="Draw the elites of each run's latest snapshot as an image mosaic laid "
        "out like the archive (va/measures: one grid; vad: one grid per dominance slice; "
        "categorical: one row per emotion with its top-k elites; per-class: one column per "
        "emotion), the objective heatmap (ribs.visualize), and QD score / coverage / best "
        "objective against evaluations. Several runs also get one figure with all their "
        "curves.",
    )
    plot.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s)")
    plot.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="output folder (default: RUN/plots for one run, ./plots for "
        "several, with file names prefixed by the run name)",
    )
    plot.add_argument("--format", default="png", choices=["png", "svg", "pdf"], help=FORMAT_HELP)
    plot.add_argument(
        "--top-k",
        type=positive_int,
        default=8,
        help="categorical mosaics: elites shown per emotion (default: %(default)s)",
    )
    plot.add_argument(
        "--thumb-size",
        type=positive_int,
        default=96,
        help="side of the mosaic thumbnails in pixels (default: %(default)s)",
    )
    plot.set_defaults(handler=plot_command)

    analyze = subparsers.add_parser(
        "analyze",
        help="relate a run's elites to colour psychology; optionally confirm them with a "
        "second classifier",
        description="Measure every elite (brightness, saturation, hue histogram and "
        "dominant hues, Hasler-Süsstrunk colourfulness, edge density, symmetry, Ross-Ralph "
        "aesthetic), correlate the classifier's outputs with these features per emotion and "
        "along each axis, and test Valdez & Mehrabian's (1994) colour-emotion equations. "
        "Writes analysis.csv, figures and report.txt, and prints the report.",
    )
    analyze.add_argument("run", metavar="RUN", help="run folder")
    analyze.add_argument(
        "--confirm",
        metavar="CKPT",
        default=None,
        help="an independently trained classifier (other backbone or seed) "
        "that re-scores the elites; its agreement per emotion / axis "
        "separates patterns from fooling artefacts",
    )
    add_size(analyze, what="the renders the features are measured on", default=128)
    analyze.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="output folder (default: RUN/analysis)",
    )
    analyze.add_argument("--format", default="png", choices=["png", "svg", "pdf"], help=FORMAT_HELP)
    add_device(analyze, what="device of the --confirm classifier")
    analyze.set_defaults(handler=analyze_command)

    gallery = subparsers.add_parser(
        "gallery",
        help="write a self-contained HTML page to browse a run's archive",
        description="Write one folder (index.html + images) that any browser opens from "
        "disk, with no server and no network: the archive's grid as the plot lays it out; "
        "clicking a cell shows the elite large with its outputs, objective, genome and a "
        "link to its PNG.",
    )
    gallery.add_argument("run", metavar="RUN", help="run folder")
    gallery.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="output folder (default: RUN/gallery)",
    )
    add_size(gallery, what="the large elite images", default=384)
    gallery.set_defaults(handler=gallery_command)


def plot_command(args: argparse.Namespace) -> int:
    """Handle ``evoemotion plot``."""
    from evoemotion.views.plots import CURVES, curves_figure, plot_run, save_figure
    from evoemotion.views.runview import open_run

    several = len(args.runs) > 1
    views = [open_run(run) for run in args.runs]
    curves = []
    for view in views:
        out = args.out or (Path("plots") if several else view.path / "plots")
        with Bars("elite", leave=False) as bars:
            written = plot_run(
                view,
                out,
                fmt=args.format,
                prefix=f"{view.name}-" if several else "",
                top_k=args.top_k,
                thumb_size=args.thumb_size,
                progress=relabelled(bars, f"plot {view.name}"),
            )
        print(f"{view.name}: {len(view)} elites at iteration {view.iteration}")
        for path in written:
            print(f"  wrote {path}")
        metrics = view.metrics()
        if len(metrics["evaluations"]):
            algorithm = view.config.get("run", {}).get("algorithm", "")
            curves.append((f"{view.name} ({algorithm})" if algorithm else view.name, metrics))
    if several and curves:
        fig = curves_figure(curves, x="evaluations", panels=CURVES)
        print(f"wrote {save_figure(fig, (args.out or Path('plots')) / 'curves', args.format)}")
    return 0


def analyze_command(args: argparse.Namespace) -> int:
    """Handle ``evoemotion analyze``."""
    from evoemotion.views.runview import open_run
    from evoemotion.views.study import analyze_run

    view = open_run(args.run)
    scorer = None
    if args.confirm:
        from evoemotion.emotion import load_model
        from evoemotion.errors import ConfigError
        from evoemotion.scoring import Scorer

        model = load_model(args.confirm, device=args.device)
        own = {r.get("identity") for r in view.config.get("classifiers", [])}
        if model.identity in own:
            raise ConfigError(
                f"--confirm {args.confirm} is the run's own classifier; give "
                "an independently trained one"
            )
        run = view.config.get("run", {})
        scorer = Scorer(
            [model], device=args.device, crops=int(run.get("crops", 1)), size=run.get("score_size")
        )
    out = args.out or view.path / "analysis"
    with Bars("elite", leave=False) as bars:
        study = analyze_run(
            view,
            out,
            size=args.size,
            fmt=args.format,
            confirm=scorer,
            progress=relabelled(bars, f"analyze {view.name}"),
        )
    print(study.report, end="")
    for path in study.files:
        print(f"wrote {path}")
    return 0


def gallery_command(args: argparse.Namespace) -> int:
    """Handle ``evoemotion gallery``."""
    from evoemotion.views.gallery import run_gallery
    from evoemotion.views.runview import open_run

    view = open_run(args.run)
    with Bars("elite", leave=False) as bars:
        index = run_gallery(
            view,
            args.out or view.path / "gallery",
            size=args.size,
            progress=relabelled(bars, f"gallery {view.name}"),
        )
    print(f"wrote {index} ({len(view)} elites); open it in a browser")
    return 0


def render_run(args: argparse.Namespace) -> int:
    """Handle ``evoemotion render RUN --cell CELL ... | --top K``: poster renders."""
    from evoemotion.views.posters import render_posters, select_elites
    from evoemotion.views.runview import open_run

    view = open_run(args.source)
    rows = select_elites(view, cells=args.cell or [], top=args.top)
    size = args.size or 2048
    out = args.output or view.path / "posters"
    with Bars("px", leave=False) as bars:
        written = render_posters(view, rows, size, out, progress=bars)
    for path in written:
        print(f"wrote {path} ({size}x{size})")
    return 0
