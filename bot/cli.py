"""`haggle`: the command-line entry point.

Subcommands are discovered from the modules of ``bot.commands``: each defines
``register(subparsers)`` and keeps its heavy imports inside the function it runs, so
``haggle --help`` stays fast and never imports torch, discord or llama_cpp.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

import bot.commands
from bot import __version__
from bot.errors import HaggleError

log = logging.getLogger("haggle")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="haggle", description="Haggling LLM agents: play, match, tournaments, reports, training.")
    parser.add_argument("--version", action="version", version=f"haggle {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(bot.commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        importlib.import_module(f"bot.commands.{info.name}").register(sub)
    for command in sub.choices.values():  # options every subcommand takes
        known = {a.dest for a in command._actions}
        if "config" not in known:
            command.add_argument("--config", metavar="PATH",
                                 help="config file (default: $HAGGLE_CONFIG, ./config.toml, the repo's)")
        if "verbose" not in known:
            command.add_argument("-v", "--verbose", action="count", default=0,
                                 help="more logging (-vv for debug)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except HaggleError as exc:
        print(f"haggle: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("haggle: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
