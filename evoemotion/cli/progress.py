"""The command line's one adapter from :class:`evoemotion.progress.Progress` to tqdm bars."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Bars:
    """A tqdm bar per progress stage, opened at the stage's first report.

    A new stage closes the previous bar; opening lazily lets an early error print alone.
    Use as a context manager (closing the last bar), and pass the object itself as a
    library function's ``progress``.

    Args:
        unit: The bars' unit, or a function of the stage label giving it; ``"px"`` bars
            scale their counts (k, M).
        leave: Whether finished bars stay on screen.
    """

    def __init__(self, unit: str | Callable[[str], str] = "img", *, leave: bool = True) -> None:
        self.unit = unit
        self.leave = leave
        self.stage: str | None = None
        self.bar: Any = None

    def __call__(self, stage: str, advance: int, total: int, info: dict | None = None) -> None:
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            unit = self.unit(stage) if callable(self.unit) else self.unit
            self.bar = tqdm(
                total=total,
                desc=stage,
                unit=unit,
                unit_scale=unit == "px",
                leave=self.leave,
                dynamic_ncols=True,
            )
            self.stage = stage
        elif total != self.bar.total:  # a stage whose total is known better as it goes
            self.bar.total = total
        self.bar.update(advance)
        if info:
            self.bar.set_postfix(info, refresh=False)

    def close(self) -> None:
        """Close the open bar, if any."""
        if self.bar is not None:
            self.bar.close()
        self.bar, self.stage = None, None

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
