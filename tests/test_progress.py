"""The one progress protocol and its tqdm adapter."""

from evoemotion.cli.progress import Bars
from evoemotion.progress import relabelled


def test_relabelled_replaces_the_stage_and_optionally_the_total():
    calls = []
    report = relabelled(lambda *call: calls.append(call), "features train", 10)
    report("features", 3, 4, None)
    relabelled(lambda *call: calls.append(call), "check")("x", 1, 7, {"loss": 1.0})
    assert calls == [("features train", 3, 10, None), ("check", 1, 7, {"loss": 1.0})]
    assert relabelled(None, "anything") is None


def test_bars_open_one_bar_per_stage_and_count_increments(capsys):
    with Bars(lambda stage: "epoch" if stage == "heads" else "img") as bars:
        bars("features", 2, 5, None)
        bars("features", 3, 5, None)
        first = bars.bar
        assert (first.n, first.total, first.unit) == (5, 5, "img")
        bars("heads", 1, 4, {"loss": 0.5})
        assert bars.bar is not first and bars.bar.unit == "epoch" and bars.bar.n == 1
    assert bars.bar is None
    assert "features" in capsys.readouterr().err


def test_a_bar_takes_the_latest_total_of_its_stage():
    with Bars() as bars:
        bars("refine", 4, 20, None)
        bars("refine", 4, 12, None)  # images finished early: fewer steps are left
        assert (bars.bar.n, bars.bar.total) == (8, 12)
        bars("refine", 4, 30, None)  # restarts: more steps are left
        assert (bars.bar.n, bars.bar.total) == (12, 30)
