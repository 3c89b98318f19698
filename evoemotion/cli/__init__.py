"""The ``evoemotion`` command line.

Each command group lives in its own module that exposes ``register(subparsers)``; the
registered handler receives the parsed arguments and returns an exit status. Library
errors (:class:`~evoemotion.errors.EvoEmotionError`) become one line on stderr and exit 2;
the parameters they name in backticks (`` `cells` ``) are shown as the command's flags
(``--cells``), see :func:`as_flags`.
Heavy imports (torch, numba) happen inside the handlers, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import re
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


#: Library parameter names whose option has another ``dest`` on the command line: the
#: first of the listed dests that the command has is used.
PARAMETER_DESTS = {
    "classifiers": ("classifier",),
    "crossover_prob": ("crossover",),
    "k": ("neighbors",),
    "novelty_policy": ("novelty_archive",),
    "fmt": ("format",),
    "kind": ("archive", "target"),
    "spec": ("compare",),
    "fractions": ("split",),
}


def _command_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The (sub-)parser of the command that ``args`` were parsed for."""
    while True:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, actions[0].dest, None) if actions else None
        if chosen not in (actions[0].choices if actions else {}):
            return parser
        parser = actions[0].choices[chosen]


def as_flags(message: str, parser: argparse.ArgumentParser) -> str:
    """Show the library parameters named in backticks as the command's flags.

    Args:
        message: A library error message, e.g. ``"`cells` must be at least 2, got 1"``.
        parser: The command's parser.

    Returns:
        The message with each `` `name` `` replaced by its flag (``--cells``), or by the
        bare name when the command has no such option.
    """
    flags = {a.dest: max(a.option_strings, key=len) for a in parser._actions if a.option_strings}

    def flag(match: re.Match) -> str:
        name = match.group(1)
        singular = name[:-1] if name.endswith("s") else name  # cells -> --cell on render
        dests = (*PARAMETER_DESTS.get(name, (name,)), singular)
        return next((flags[dest] for dest in dests if dest in flags), name)

    return re.sub(r"`([A-Za-z_][A-Za-z0-9_]*)`", flag, message)


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
        message = as_flags(str(err), _command_parser(parser, args))
        print(f"evoemotion {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"evoemotion {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
