"""The ``evoemotion`` command line.

Each command group lives in its own module that exposes ``register(subparsers)``; the
registered handler receives the parsed arguments and returns an exit status. Library
errors (:class:`~evoemotion.errors.EvoEmotionError`) become one line on stderr and exit 2.
Heavy imports (torch, numba) happen inside the handlers, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from evoemotion import __version__
from evoemotion.errors import EvoEmotionError

#: Modules of ``evoemotion.cli`` that each register one or more sub-commands.
COMMAND_MODULES = ("render", "classify", "run", "views", "cgen")


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="evoemotion",
        description="Evolve images that show what image-emotion classifiers have learned.",
    )
    parser.add_argument("--version", action="version", version=f"evoemotion {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"evoemotion.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 1
    try:
        return int(args.handler(args) or 0)
    except EvoEmotionError as err:
        print(f"evoemotion {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"evoemotion {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
