"""Correlations, the Valdez & Mehrabian check, per-emotion summaries and the report."""

from __future__ import annotations

import numpy as np
import pytest

from evoemotion.views.analysis import (
    VALDEZ_MEHRABIAN,
    axis_bands,
    check_equations,
    confirm_axes,
    confirm_classes,
    correlate,
    report,
    summarize_groups,
)

CLASSES = ["anger", "joy", "sadness"]


@pytest.fixture
def colours():
    rng = np.random.default_rng(0)
    return rng.uniform(0.1, 0.9, 200), rng.uniform(0.0, 1.0, 200)


def z(x):
    return (x - x.mean()) / x.std()


def test_correlate_finds_monotone_and_unrelated_pairs_and_skips_nan():
    rng = np.random.default_rng(1)
    feature = rng.normal(size=100)
    noise = rng.normal(size=100)
    aesthetic = feature.copy()
    aesthetic[:10] = np.nan
    result = correlate({"joy": np.exp(feature), "anger": noise},
                       {"brightness": feature, "aesthetic": aesthetic})
    table = {(c.output, c.feature): c for c in result}
    assert [(c.output, c.feature) for c in result][:2] == [("joy", "brightness"),
                                                           ("joy", "aesthetic")]
    assert table["joy", "brightness"].spearman == pytest.approx(1.0)
    assert table["joy", "brightness"].p_value < 1e-10
    assert table["joy", "brightness"].pearson < 1.0  # exp bends it; ranks do not care
    assert table["joy", "aesthetic"].n == 90
    assert table["joy", "aesthetic"].spearman == pytest.approx(1.0)
    assert abs(table["anger", "brightness"].spearman) < 0.3
    assert table["anger", "brightness"].p_value > 0.01


def test_correlate_with_a_constant_column_is_nan():
    result = correlate({"joy": np.ones(10)}, {"brightness": np.arange(10.0)})
    assert np.isnan(result[0].spearman) and np.isnan(result[0].p_value)


def test_outputs_made_by_the_paper_equations_agree(colours):
    b, s = colours
    outputs = {axis: wb * z(b) + ws * z(s) for axis, (wb, ws) in VALDEZ_MEHRABIAN.items()}
    checks = check_equations(outputs, b, s)
    assert [c.axis for c in checks] == ["valence", "arousal", "dominance"]
    for c in checks:
        scale = np.std(outputs[c.axis])
        assert c.r_predicted == pytest.approx(1.0, abs=0.02)
        assert np.allclose(np.array(c.fitted) * scale, c.expected, atol=0.03)
        assert c.signs_agree == (True, True)
        assert c.verdict == "agrees"


def test_opposite_outputs_disagree_and_missing_axes_are_skipped(colours):
    b, s = colours
    checks = check_equations({"arousal": 0.31 * z(b) - 0.60 * z(s)}, b, s)
    assert len(checks) == 1
    (c,) = checks
    assert c.r_predicted == pytest.approx(-1.0, abs=0.02)
    assert c.signs_agree == (False, False)
    assert c.verdict == "disagrees"


def test_brightness_only_valence_partly_agrees(colours):
    b, s = colours
    rng = np.random.default_rng(2)
    (c,) = check_equations({"valence": z(b) - 0.3 * z(s) + 0.1 * rng.normal(size=200)}, b, s)
    assert c.signs_agree == (True, False)
    assert c.verdict == "partly agrees"
    assert c.fitted[0] > 0 > c.fitted[1]
    assert all(se > 0 for se in c.fitted_se)


def test_unrelated_outputs_have_no_significant_relation(colours):
    b, s = colours
    rng = np.random.default_rng(3)
    (c,) = check_equations({"dominance": rng.normal(size=200)}, b, s)
    assert c.p_value > 0.05
    assert c.verdict == "no significant relation"
    (c,) = check_equations({"dominance": np.ones(200)}, b, s)
    assert c.verdict == "undetermined"


def test_summarize_groups_by_top_class():
    probs = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    features = {"brightness": np.array([0.2, 0.4, 0.9])}
    hist = np.zeros((3, 12))
    hist[:2, 0] = 1.0
    hist[2, 8] = 1.0
    groups = summarize_groups(probs.argmax(axis=1), CLASSES, features, hist)
    assert [(g.name, g.n) for g in groups] == [("anger", 2), ("joy", 0), ("sadness", 1)]
    assert groups[0].mean["brightness"] == pytest.approx(0.3)
    assert groups[0].sd["brightness"] == pytest.approx(0.1)
    assert np.isnan(groups[1].mean["brightness"])
    assert groups[2].hue[8] == 1.0


def test_axis_bands_label_values_by_equal_bands():
    labels, names = axis_bands(np.array([1.0, 3.6, 3.7, 9.0, 12.0, 0.0]), 1.0, 9.0, 3)
    assert labels.tolist() == [0, 0, 1, 2, 2, 0]
    assert names == ["1.0 to 3.7", "3.7 to 6.3", "6.3 to 9.0"]


def test_confirm_classes_counts_argmax_matches_per_class():
    probs = np.array([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    other = np.array([[0.6, 0.2, 0.2], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1], [0.5, 0.1, 0.4]])
    rows = {r.name: r for r in confirm_classes(probs, other, CLASSES)}
    assert (rows["anger"].n, rows["anger"].value) == (2, 0.5)
    assert rows["anger"].extra == pytest.approx(0.35)
    assert rows["joy"].value == 1.0
    assert rows["sadness"].value == 0.0
    assert (rows["all"].n, rows["all"].value) == (4, 0.5)


def test_confirm_axes_error_and_correlation():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    (row,) = confirm_axes({"valence": a}, {"valence": a + 0.5}, ["valence"])
    assert row.value == pytest.approx(0.5)
    assert row.extra == pytest.approx(1.0)


def test_report_states_verdicts_numbers_and_agreement(colours):
    b, s = colours
    outputs = {"valence": z(b), "arousal": -z(s)}
    probs = np.tile([0.7, 0.2, 0.1], (200, 1))
    features = {"brightness": b, "saturation": s}
    text = report(
        title="runs/x (va)",
        n_elites=200,
        correlations=correlate(outputs, features),
        checks=check_equations(outputs, b, s),
        groups={"Elites by top emotion": summarize_groups(probs.argmax(axis=1), CLASSES,
                                                          features, np.zeros((200, 12))),
                "Elites along valence": summarize_groups(*axis_bands(outputs["valence"], -3, 3),
                                                         features, np.zeros((200, 12)))},
        class_agreement=confirm_classes(probs, probs, CLASSES),
        axis_agreement=confirm_axes(outputs, outputs, ["valence"]),
    )
    assert text.startswith("runs/x (va)\n")
    one_line = " ".join(text.split())
    assert "pleasure (valence): paper +0.69 B +0.22 S" in one_line
    assert "arousal: paper -0.31 B +0.60 S" in one_line and "-> disagrees" in one_line
    assert "anger (n = 200)" in text and "joy: no elite" in text
    assert "Elites along valence (mean ± sd of features, main hues):\n-3.0 to -1.0 (n = " in text
    assert "argmax agreement 100%" in text
    assert "Bonferroni-corrected over 4 tests" in text
    assert text.endswith("\n")
