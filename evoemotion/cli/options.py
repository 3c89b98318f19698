"""Options shared by several commands, declared once: one spelling, one help text.

Every command that takes a device, a classifier, a seed, an image side or a "use the
model's own size" value declares it through these functions, so the vocabulary is the
same everywhere. Old spellings stay as aliases: ``--model`` for ``--classifier``, and
``0`` or ``none`` for ``native``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

#: The words that mean "the classifier's own input size"; ``native`` is the documented one.
NATIVE_WORDS = ("native", "0", "none")

DEVICE_CHOICES_HELP = "auto (CUDA when present), cpu, cuda, cuda:INDEX"


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1.

    Args:
        text: The option's value.

    Returns:
        The integer.

    Raises:
        argparse.ArgumentTypeError: Not an integer or below 1.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def size_or_native(native: Any = None) -> Callable[[str], Any]:
    """argparse type: an image side in pixels, or ``native`` (the model's own size).

    Args:
        native: What ``native`` (and its aliases ``0``, ``none``) stands for in the
            library call (``None`` or ``0``).

    Returns:
        The converter.
    """

    def convert(text: str) -> Any:
        if text.lower() in NATIVE_WORDS:
            return native
        return positive_int(text)

    convert.__name__ = "size"
    return convert


def add_device(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    what: str = "scoring device",
    default: str | None = "auto",
) -> None:
    """Add ``--device``.

    Args:
        parser: The parser or group.
        what: What the device runs (first words of the help).
        default: The default; ``None`` means the one recorded in the run or file.
    """
    shown = "the recorded one" if default is None else default
    parser.add_argument(
        "--device", default=default, help=f"{what}: {DEVICE_CHOICES_HELP} (default: {shown})"
    )


def add_seed(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    what: str = "random seed",
    default: int | None = 0,
    shown: object = None,
) -> None:
    """Add ``--seed``.

    Args:
        parser: The parser or group.
        what: What the seed decides (first words of the help).
        default: The parsed default (``None``: "not given", filled in later).
        shown: The default to show in the help when ``default`` is ``None``.
    """
    parser.add_argument(
        "--seed",
        type=int,
        default=default,
        help=f"{what} (default: {default if shown is None else shown})",
    )


def add_size(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    flag: str = "--size",
    *,
    what: str,
    default: int | None,
    native: Any = False,
    shown: object = None,
) -> None:
    """Add an image-side option (``--size``, ``--score-size`` ...).

    Args:
        parser: The parser or group.
        flag: The option's name.
        what: What the side is of (the help says "side in px of WHAT").
        default: The parsed default.
        native: ``False`` for a plain side; else what ``native`` stands for (``None``
            or ``0``), and the option accepts it.
        shown: The default to show in the help (default: ``default``, or ``native``).
    """
    if shown is None:
        shown = "native" if default is None or default == native else default
    parser.add_argument(
        flag,
        type=positive_int if native is False else size_or_native(native),
        default=default,
        metavar="PX" if native is False else "PX|native",
        help=f"side in px of {what}"
        + ("" if native is False else "; native = the classifier's own input size")
        + f" (default: {shown})",
    )


def add_classifier(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    help: str,
    default: str | None = None,
    repeat: bool = False,
    dest: str = "classifier",
) -> None:
    """Add ``--classifier`` (``--model`` is kept as an alias).

    Args:
        parser: The parser or group.
        help: The help text (what the classifier is for and the default).
        default: The default.
        repeat: Whether it may be given several times (an ensemble).
        dest: The attribute name on the parsed namespace.
    """
    parser.add_argument(
        "--classifier",
        "--model",
        dest=dest,
        action="append" if repeat else "store",
        default=default,
        metavar="CKPT",
        help=help,
    )
