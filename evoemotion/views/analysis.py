"""Statistics that relate the classifier's outputs to image features.

Pure computation on named columns (``dict[str, np.ndarray]``, one value per elite): the
correlations of each output with each feature, per-emotion summaries, the comparison with
Valdez & Mehrabian's (1994) colour-emotion equations, the agreement of a second classifier,
and the plain-text report that puts them in words. Reading run folders and scoring images
happen elsewhere (:mod:`evoemotion.views.runview`), so all of this is testable on arrays.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np
from scipy import stats

from evoemotion.views.features import HUE_NAMES

#: Valdez & Mehrabian (1994) standardized regression weights of (brightness, saturation)
#: for pleasure, arousal and dominance; pleasure is the classifiers' valence.
VALDEZ_MEHRABIAN = {
    "valence": (0.69, 0.22),
    "arousal": (-0.31, 0.60),
    "dominance": (-0.76, 0.32),
}
#: Significance level before the Bonferroni correction over all correlations reported.
ALPHA = 0.05


@dataclass(frozen=True)
class Correlation:
    """The correlation of one classifier output with one image feature over the elites.

    Attributes:
        output: Output name (an emotion class or an axis such as ``"valence"``).
        feature: Feature name.
        n: Number of elites.
        spearman: Spearman rank correlation (nan when either column is constant or n < 3).
        p_value: Two-sided p-value of ``spearman`` (t approximation).
        pearson: Pearson correlation.
    """

    output: str
    feature: str
    n: int
    spearman: float
    p_value: float
    pearson: float


@dataclass(frozen=True)
class EquationCheck:
    """One Valdez & Mehrabian equation tested on the elites.

    Attributes:
        axis: ``"valence"`` (pleasure), ``"arousal"`` or ``"dominance"``.
        n: Number of elites.
        expected: The paper's standardized weights of (brightness, saturation).
        fitted: Standardized weights fitted to the elites by least squares.
        fitted_se: Standard errors of ``fitted``.
        r_predicted: Pearson correlation of the classifier's axis with the paper's
            prediction ``w_b * z(brightness) + w_s * z(saturation)``.
        p_value: Two-sided p-value of ``r_predicted``.
    """

    axis: str
    n: int
    expected: tuple[float, float]
    fitted: tuple[float, float]
    fitted_se: tuple[float, float]
    r_predicted: float
    p_value: float

    @property
    def signs_agree(self) -> tuple[bool, bool]:
        """Whether each fitted weight has the paper's sign."""
        return tuple(  # type: ignore[return-value]
            bool(np.sign(f) == np.sign(e)) for f, e in zip(self.fitted, self.expected, strict=True)
        )

    @property
    def verdict(self) -> str:
        """How the classifier relates to the paper's prediction over the elites.

        ``"agrees"``: significant positive correlation with the prediction and both fitted
        weights of the paper's sign; ``"partly agrees"``: significant positive correlation
        but a weight of the other sign; ``"disagrees"``: significant negative correlation;
        ``"no significant relation"`` (p >= :data:`ALPHA`); ``"undetermined"`` when a
        column is constant or there are too few elites.
        """
        if not np.isfinite(self.r_predicted) or not np.isfinite(self.p_value):
            return "undetermined"
        if self.p_value >= ALPHA:
            return "no significant relation"
        if self.r_predicted < 0:
            return "disagrees"
        return "agrees" if all(self.signs_agree) else "partly agrees"


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    norm = np.sqrt((x * x).sum() * (y * y).sum())
    if len(x) < 3 or norm <= 1e-12 * max(1.0, len(x)):
        return float("nan")
    return float(np.clip((x * y).sum() / norm, -1.0, 1.0))


def _p_value(r: float, n: int) -> float:
    if not np.isfinite(r) or n < 3:
        return float("nan")
    if abs(r) >= 1.0:
        return 0.0
    t = r * np.sqrt((n - 2) / (1.0 - r * r))
    return float(2.0 * stats.t.sf(abs(t), df=n - 2))


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x, dtype=float)


def correlate(outputs: dict[str, np.ndarray], features: dict[str, np.ndarray]) -> list[Correlation]:
    """Correlate every output column with every feature column.

    Elites where either value is not finite (e.g. the aesthetic of a flat image) are left
    out of that pair.

    Args:
        outputs: Classifier outputs by name, each ``(N,)``.
        features: Image features by name, each ``(N,)``.

    Returns:
        One :class:`Correlation` per (output, feature) pair, outputs in the given order.
    """
    result = []
    for out_name, out in outputs.items():
        out = np.asarray(out, dtype=float)
        for feat_name, feat in features.items():
            feat = np.asarray(feat, dtype=float)
            keep = np.isfinite(out) & np.isfinite(feat)
            x, y = out[keep], feat[keep]
            rho = _pearson(stats.rankdata(x), stats.rankdata(y))
            n = int(keep.sum())
            result.append(
                Correlation(out_name, feat_name, n, rho, _p_value(rho, n), _pearson(x, y))
            )
    return result


def check_equations(
    outputs: dict[str, np.ndarray], brightness: np.ndarray, saturation: np.ndarray
) -> list[EquationCheck]:
    """Test the Valdez & Mehrabian equations against the axes the classifier has.

    Each axis among ``valence``, ``arousal``, ``dominance`` present in ``outputs`` is
    z-scored and regressed on z-scored brightness and saturation (standardized weights, as
    the paper reports them); the paper's own prediction is correlated with the axis too.

    Args:
        outputs: Classifier outputs by name, each ``(N,)``.
        brightness: ``(N,)`` brightness of the same elites.
        saturation: ``(N,)`` saturation of the same elites.

    Returns:
        One :class:`EquationCheck` per axis present, in the paper's order.
    """
    zb, zs = _zscore(np.asarray(brightness, float)), _zscore(np.asarray(saturation, float))
    design = np.stack([zb, zs], axis=1)
    checks = []
    for axis, expected in VALDEZ_MEHRABIAN.items():
        if axis not in outputs:
            continue
        y = _zscore(np.asarray(outputs[axis], float))
        n = len(y)
        fitted, se = (float("nan"),) * 2, (float("nan"),) * 2
        gram = design.T @ design
        if n > 3 and np.linalg.matrix_rank(gram) == 2:
            coef = np.linalg.solve(gram, design.T @ y)
            resid = y - design @ coef
            sigma2 = float(resid @ resid) / (n - 2)
            fitted = tuple(float(c) for c in coef)
            se = tuple(float(s) for s in np.sqrt(sigma2 * np.diag(np.linalg.inv(gram))))
        r = _pearson(y, expected[0] * zb + expected[1] * zs)
        checks.append(
            EquationCheck(axis, n, expected, fitted, se, r, _p_value(r, n))  # type: ignore[arg-type]
        )
    return checks


@dataclass(frozen=True)
class GroupSummary:
    """Feature statistics of one group of elites (an emotion, or a band along an axis).

    Attributes:
        name: The group, e.g. ``"joy"`` or ``"valence 1.0 to 3.2"``.
        n: Number of elites in it.
        mean: Mean of each feature over those elites.
        sd: Standard deviation of each feature over those elites.
        hue: Mean hue histogram of those elites (bins :data:`HUE_NAMES`).
    """

    name: str
    n: int
    mean: dict[str, float]
    sd: dict[str, float]
    hue: np.ndarray


def summarize_groups(
    labels: np.ndarray,
    names: list[str],
    features: dict[str, np.ndarray],
    hue_hist: np.ndarray,
) -> list[GroupSummary]:
    """Summarize features per group of elites.

    Args:
        labels: ``(N,)`` group index of each elite (e.g. its most probable class).
        names: Group names, indexed by label.
        features: Image features by name, each ``(N,)``.
        hue_hist: ``(N, 12)`` hue histograms.

    Returns:
        One :class:`GroupSummary` per name, in order (n may be 0; stats are then nan).
    """
    labels = np.asarray(labels)
    groups = []
    for k, name in enumerate(names):
        mask = labels == k
        n = int(mask.sum())
        mean = {f: float(np.nanmean(v[mask])) if n else float("nan") for f, v in features.items()}
        sd = {f: float(np.nanstd(v[mask])) if n else float("nan") for f, v in features.items()}
        hue = hue_hist[mask].mean(axis=0) if n else np.full(len(HUE_NAMES), np.nan)
        groups.append(GroupSummary(name, n, mean, sd, hue))
    return groups


def axis_bands(
    values: np.ndarray, low: float, high: float, bands: int = 3
) -> tuple[np.ndarray, list[str]]:
    """Split an axis's range into equal bands and label each elite with its band.

    Args:
        values: ``(N,)`` axis values (e.g. valence on 1..9).
        low: Low end of the axis.
        high: High end of the axis.
        bands: Number of bands.

    Returns:
        ``(labels, names)``: band index per elite and ``"low to high"`` band names.
    """
    edges = np.linspace(low, high, bands + 1)
    labels = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bands - 1)
    names = [f"{a:.1f} to {b:.1f}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return labels, names


@dataclass(frozen=True)
class Agreement:
    """How well a second classifier confirms the elites of one emotion or axis.

    Attributes:
        name: The emotion (categorical) or axis (e.g. ``"valence"``).
        n: Number of elites compared.
        value: For an emotion, the share of its elites (by the run's argmax) whose
            argmax the second classifier shares; for an axis, the mean absolute error
            between the two classifiers' values.
        extra: For an emotion, the mean probability the second classifier gives that
            emotion on those elites; for an axis, the Pearson correlation of the two.
    """

    name: str
    n: int
    value: float
    extra: float


def confirm_classes(
    probs: np.ndarray, confirm_probs: np.ndarray, class_names: list[str]
) -> list[Agreement]:
    """Per-emotion argmax agreement of a second classifier with the run's classifier.

    Args:
        probs: ``(N, K)`` probabilities from the run's classifier.
        confirm_probs: ``(N, K)`` probabilities from the confirming classifier, same
            class order.
        class_names: The K class names.

    Returns:
        One :class:`Agreement` per class, then one named ``"all"`` over every elite.
    """
    top = np.argmax(probs, axis=1)
    match = top == np.argmax(confirm_probs, axis=1)
    rows = []
    for k, name in enumerate(class_names):
        mask = top == k
        n = int(mask.sum())
        rows.append(
            Agreement(
                name,
                n,
                float(match[mask].mean()) if n else float("nan"),
                float(confirm_probs[mask, k].mean()) if n else float("nan"),
            )
        )
    given = confirm_probs[np.arange(len(top)), top]
    rows.append(
        Agreement(
            "all",
            len(top),
            float(match.mean()) if len(top) else float("nan"),
            float(given.mean()) if len(top) else float("nan"),
        )
    )
    return rows


def confirm_axes(
    outputs: dict[str, np.ndarray], confirm: dict[str, np.ndarray], axes: list[str]
) -> list[Agreement]:
    """Per-axis error and correlation between a second classifier and the run's.

    Args:
        outputs: The run classifier's outputs by name.
        confirm: The confirming classifier's outputs by name.
        axes: Axis names present in both (e.g. ``["valence", "arousal"]``).

    Returns:
        One :class:`Agreement` per axis (value = mean absolute error, extra = Pearson r).
    """
    rows = []
    for axis in axes:
        a = np.asarray(outputs[axis], float)
        b = np.asarray(confirm[axis], float)
        mae = float(np.abs(a - b).mean()) if len(a) else float("nan")
        rows.append(Agreement(axis, len(a), mae, _pearson(a, b)))
    return rows


def _fmt(x: float, digits: int = 2) -> str:
    return "  n/a" if not np.isfinite(x) else f"{x:+.{digits}f}"


def _correlation_table(correlations: list[Correlation], alpha: float) -> list[str]:
    feats = list(dict.fromkeys(c.feature for c in correlations))
    outs = list(dict.fromkeys(c.output for c in correlations))
    width = max(12, *(len(o) + 1 for o in outs))
    lines = [" " * width + "".join(f"{f[:12]:>14}" for f in feats)]
    table = {(c.output, c.feature): c for c in correlations}
    for out in outs:
        cells = []
        for feat in feats:
            c = table[(out, feat)]
            star = "*" if np.isfinite(c.p_value) and c.p_value < alpha else " "
            cells.append(f"{_fmt(c.spearman):>13}{star}")
        lines.append(f"{out:<{width}}" + "".join(cells))
    return lines


def _equation_lines(checks: list[EquationCheck]) -> list[str]:
    lines = []
    for c in checks:
        eb, es = c.expected
        fb, fs = c.fitted
        sb, ss = c.fitted_se
        signs = ["matches" if same else "opposes" for same in c.signs_agree]
        text = (
            f"{'pleasure (valence)' if c.axis == 'valence' else c.axis}: paper {eb:+.2f} B "
            f"{es:+.2f} S; elites {_fmt(fb)} (se {sb:.2f}) B {_fmt(fs)} (se {ss:.2f}) S; "
            f"r(paper's prediction, classifier) = {_fmt(c.r_predicted)} (p = {c.p_value:.2g}, "
            f"n = {c.n}) -> {c.verdict}; the brightness weight's sign {signs[0]} the paper's, "
            f"the saturation weight's {signs[1]} it."
        )
        lines += textwrap.wrap(text, width=100, subsequent_indent="    ")
    return lines


def _group_lines(groups: list[GroupSummary]) -> list[str]:
    lines = []
    for g in groups:
        if not g.n:
            lines.append(f"{g.name}: no elite")
            continue
        feats = ", ".join(f"{f} {g.mean[f]:.2f}±{g.sd[f]:.2f}" for f in g.mean)
        order = np.argsort(-g.hue)[:3]
        hues = " ".join(f"{HUE_NAMES[j]} {g.hue[j]:.2f}" for j in order if g.hue[j] > 0)
        text = f"{g.name} (n = {g.n}): {feats}; main hues {hues or 'none (grey)'}"
        lines += textwrap.wrap(text, width=100, subsequent_indent="    ")
    return lines


def _agreement_lines(rows: list[Agreement], categorical: bool) -> list[str]:
    if categorical:
        return [
            f"{r.name}: n = {r.n}, argmax agreement {r.value:.0%}, mean confirming "
            f"probability {r.extra:.2f}"
            if r.n
            else f"{r.name}: n = 0"
            for r in rows
        ]
    return [
        f"{r.name}: n = {r.n}, mean |difference| {r.value:.2f}, r = {_fmt(r.extra)}" for r in rows
    ]


def report(
    *,
    title: str,
    n_elites: int,
    correlations: list[Correlation],
    checks: list[EquationCheck],
    groups: dict[str, list[GroupSummary]],
    class_agreement: list[Agreement] | None = None,
    axis_agreement: list[Agreement] | None = None,
) -> str:
    """Write the plain-text analysis report.

    Args:
        title: First line (e.g. the run folder and archive kind).
        n_elites: Number of elites analysed.
        correlations: From :func:`correlate`.
        checks: From :func:`check_equations`.
        groups: Section heading -> :func:`summarize_groups` result (elites by top
            emotion, by band along each axis).
        class_agreement: From :func:`confirm_classes`, when a second classifier was given.
        axis_agreement: From :func:`confirm_axes`, when a second classifier was given.

    Returns:
        The report text, ending in a newline.
    """
    n_tests = max(1, len(correlations))
    alpha = ALPHA / n_tests
    lines = [title, "=" * len(title), f"elites analysed: {n_elites}", ""]
    if checks:
        lines += [
            "Valdez & Mehrabian (1994) colour-emotion equations (standardized weights of",
            "brightness B = mean CIELAB L*, saturation S = mean HSV saturation) against the",
            "classifier's axes over the elites:",
            *_equation_lines(checks),
            "",
        ]
    else:
        lines += [
            "No valence/arousal/dominance outputs: the colour-emotion equations are not tested.",
            "",
        ]
    for heading, section in groups.items():
        lines += [f"{heading} (mean ± sd of features, main hues):", *_group_lines(section), ""]
    if correlations:
        lines += [
            *textwrap.wrap(
                "Spearman correlations of classifier outputs (rows) with image features "
                f"(columns); * = p < {alpha:.2g} (0.05 Bonferroni-corrected over {n_tests} "
                "tests):",
                width=100,
            ),
            *_correlation_table(correlations, alpha),
            "",
        ]
    if class_agreement:
        lines += [
            "Second classifier (anti-fooling check) by the run's top emotion:",
            *_agreement_lines(class_agreement, True),
            "",
        ]
    if axis_agreement:
        lines += [
            "Second classifier (anti-fooling check) per axis:",
            *_agreement_lines(axis_agreement, False),
            "",
        ]
    return "\n".join(lines).rstrip("\n") + "\n"
