"""``analyze``: measure a run's elites and relate the classifier's outputs to what they show.

:func:`analyze_run` renders every elite of the latest checkpoint, measures its features
(:mod:`evoemotion.views.features`), computes the statistics of
:mod:`evoemotion.views.analysis`, optionally has a second, independently trained classifier
score the same elites (the anti-fooling check), and writes ``analysis.csv``, the figures
and ``report.txt`` into one folder.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evoemotion.atomic import atomic_write
from evoemotion.errors import ConfigError
from evoemotion.progress import Progress, relabelled
from evoemotion.views import analysis
from evoemotion.views.features import FEATURE_NAMES, HUE_NAMES, dominant_hues, image_features
from evoemotion.views.plots import (
    correlation_figure,
    equations_figure,
    hue_figure,
    save_figure,
)

if TYPE_CHECKING:
    from evoemotion.scoring import Scorer
    from evoemotion.views.runview import RunView

#: Regression outputs the analysis treats as emotion axes.
AXES = ("valence", "arousal", "dominance")


@dataclass
class Study:
    """What :func:`analyze_run` found and wrote.

    Attributes:
        report: The plain-text report.
        files: Files written.
        features: Feature columns of the elites.
        checks: The Valdez & Mehrabian comparisons.
        class_agreement: Per-emotion agreement of the confirming classifier, if any.
        axis_agreement: Per-axis agreement of the confirming classifier, if any.
    """

    report: str
    files: list[Path] = field(default_factory=list)
    features: dict[str, np.ndarray] = field(default_factory=dict)
    checks: list[analysis.EquationCheck] = field(default_factory=list)
    class_agreement: list[analysis.Agreement] = field(default_factory=list)
    axis_agreement: list[analysis.Agreement] = field(default_factory=list)


def _confirm(view: RunView, scorer: Scorer, progress: Progress | None):
    """Score the elites with a second classifier, rendered as the run rendered them."""
    classes = list(scorer.class_names)
    if view.class_names and sorted(classes) != sorted(view.class_names):
        raise ConfigError(
            f"`confirm` classifier has classes {classes}, the run's has {view.class_names}; "
            "a confirmation needs the same classes"
        )
    axes = [a for a in AXES if a in view.outputs and a in scorer.regression_names]
    if not axes and not view.class_names:
        raise ConfigError("`confirm` classifier shares no output with the run's classifier")
    size = int(view.config.get("run", {}).get("render_size", 64))
    rows = np.arange(len(view))
    images = view.render(rows, size, progress)
    out = scorer.score(images)
    confirm = {name: np.asarray(out[name], dtype=float) for name in classes + axes}
    class_rows, axis_rows = [], []
    if view.class_names:
        other = np.stack([confirm[c] for c in view.class_names], axis=1)
        class_rows = analysis.confirm_classes(view.probs, other, view.class_names)
    if axes:
        axis_rows = analysis.confirm_axes(view.outputs, confirm, axes)
    return confirm, class_rows, axis_rows


def _table(view: RunView, features, hue_hist, confirm) -> bytes:
    # A recorded output that is also a feature (the aesthetic objective) is in "objective".
    names = [n for n in view.outputs if n not in FEATURE_NAMES]
    header = [
        "cell",
        "objective",
        *names,
        *FEATURE_NAMES,
        *(f"hue_{h}" for h in HUE_NAMES),
        "dominant_hues",
    ]
    header += [f"confirm_{n}" for n in confirm]
    if confirm and view.class_names:
        header.append("confirm_agrees")
    hues = dominant_hues(hue_hist)
    probs = view.probs
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for i in range(len(view)):
        row = [int(view.cells[i]), f"{view.objective[i]:.6g}"]
        row += [f"{view.outputs[n][i]:.6g}" for n in names]
        row += [f"{features[f][i]:.6g}" for f in FEATURE_NAMES]
        row += [f"{h:.4f}" for h in hue_hist[i]] + [hues[i]]
        row += [f"{confirm[n][i]:.6g}" for n in confirm]
        if confirm and view.class_names:
            other = np.array([confirm[c][i] for c in view.class_names])
            row.append(int(np.argmax(other) == np.argmax(probs[i])))
        writer.writerow(row)
    return buffer.getvalue().encode()


def analyze_run(
    view: RunView,
    folder: Path,
    *,
    size: int = 128,
    fmt: str = "png",
    confirm: Scorer | None = None,
    progress: Progress | None = None,
) -> Study:
    """Analyse a run's elites and write ``analysis.csv``, figures and ``report.txt``.

    Args:
        view: The run.
        folder: Output folder (created if missing).
        size: Side in pixels of the renders the features are measured on.
        fmt: Figure format (png, svg, pdf).
        confirm: A scorer holding a second, independently trained classifier; its
            agreement with the run's classifier is reported.
        progress: Reports stage ``"analyze"`` in elites rendered, counting each elite
            twice when ``confirm`` is given (once for the features, once for scoring).

    Returns:
        The :class:`Study`.

    Raises:
        ConfigError: The run has no elites yet, or the confirming classifier shares no
            output with the run's.
    """
    if not len(view):
        raise ConfigError(f"{view.path} has no elites yet: nothing to analyse")
    folder.mkdir(parents=True, exist_ok=True)
    progress = relabelled(progress, "analyze", (1 + (confirm is not None)) * len(view))
    images = view.render(np.arange(len(view)), size, progress)
    features, hue_hist = image_features(images)
    axes = [a for a in AXES if a in view.outputs]
    emotions = {n: view.outputs[n] for n in view.class_names + axes}
    correlations = analysis.correlate(emotions, features)
    checks = analysis.check_equations(emotions, features["brightness"], features["saturation"])
    groups = {}
    if view.class_names:
        groups["Elites by top emotion"] = analysis.summarize_groups(
            np.argmax(view.probs, axis=1), view.class_names, features, hue_hist
        )
    for axis in axes:
        labels, names = analysis.axis_bands(view.outputs[axis], *view.scales[axis])
        groups[f"Elites along {axis}"] = analysis.summarize_groups(
            labels, [f"{axis} {n}" for n in names], features, hue_hist
        )
    confirmed, class_rows, axis_rows = ({}, [], [])
    if confirm is not None:
        confirmed, class_rows, axis_rows = _confirm(view, confirm, progress)
    title = (
        f"{view.name}: {view.spec.kind} archive, iteration {view.iteration}, features on "
        f"{size}x{size} renders"
    )
    text = analysis.report(
        title=title,
        n_elites=len(view),
        correlations=correlations,
        checks=checks,
        groups=groups,
        class_agreement=class_rows,
        axis_agreement=axis_rows,
    )
    study = Study(text, [], features, checks, class_rows, axis_rows)
    atomic_write(folder / "analysis.csv", _table(view, features, hue_hist, confirmed))
    atomic_write(folder / "report.txt", text.encode("utf-8"))
    study.files += [folder / "analysis.csv", folder / "report.txt"]
    alpha = analysis.ALPHA / max(1, len(correlations))
    study.files.append(
        save_figure(correlation_figure(correlations, alpha), folder / "correlations", fmt)
    )
    if checks:
        fig = equations_figure(checks, emotions, features["brightness"], features["saturation"])
        study.files.append(save_figure(fig, folder / "equations", fmt))
    if view.class_names:
        study.files.append(
            save_figure(hue_figure(groups["Elites by top emotion"]), folder / "hues", fmt)
        )
    return study
