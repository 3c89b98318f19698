"""The one progress protocol of the library.

A long library function takes an optional ``progress`` callable and calls it after each
piece of work as ``progress(stage, advance, total, info)``: a stage label, the units just
done (an increment, not a running count), the stage's total in the same units, and an
optional dict shown next to the bar (a loss, say) or ``None``. Progress is display only:
nothing a function returns or writes depends on whether, or how, it is reported.
The command line's one adapter to tqdm is :class:`evoemotion.cli.progress.Bars`.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """``progress(stage, advance, total, info)``; see the module docstring."""

    def __call__(self, stage: str, advance: int, total: int, info: dict | None, /) -> None:
        """Report ``advance`` more units of ``total`` done in ``stage``."""


def relabelled(progress: Progress | None, stage: str, total: int | None = None) -> Progress | None:
    """``progress`` with every report's stage label (and, if given, total) replaced.

    Lets a caller show a library function's work under its own label, or as a part of a
    larger task (``total`` then counts the whole task).

    Args:
        progress: A progress callback, or ``None``.
        stage: The label to report under.
        total: The total to report; ``None`` keeps each report's own.

    Returns:
        The adapted callback, or ``None`` when ``progress`` is ``None``.
    """
    if progress is None:
        return None

    def report(_stage: str, advance: int, own_total: int, info: dict | None) -> None:
        progress(stage, advance, own_total if total is None else total, info)

    return report
