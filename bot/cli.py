"""`haggle`: the command-line entry point.

Subcommands are discovered from the modules of ``bot.commands``: each defines
``register(subparsers)`` and keeps its heavy imports inside the function it runs, so
``haggle --help`` stays fast and never imports torch, discord or llama_cpp.

Ctrl-C: from the moment ``main`` is called until it returns, an interrupt makes haggle print
"haggle: interrupted" and exit with status 130, whatever it was doing (building the parser,
loading the config, running a tournament, printing its summary). Commands that run an event
loop turn the interrupt into a cancellation of their work (asyncio.run does), so what they
stored stays whole. Before ``main`` runs (Python starting up) and after it returns (Python
shutting down), Python's own handling applies: the process dies of SIGINT, which a shell
reports as status 130 too (inside Python's site import it exits 1, "Fatal Python error"). A
haggle started with SIGINT ignored (a background job of a non-interactive shell, such as
``make test &`` in a script) keeps ignoring it, as Python and other Unix programs do. See
docs/trust.md.
"""

from __future__ import annotations

import contextlib
import signal
import sys

TYPE_CHECKING = False  # not typing's: importing typing takes time before main's try
if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

# Everything else is imported inside the functions: importing argparse, logging and the command
# modules takes a good part of start-up, and ``main``'s try must cover it (see above).


def build_parser() -> argparse.ArgumentParser:
    import argparse
    import importlib
    import pkgutil

    import bot.commands
    from bot import __version__

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


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold a Ctrl-C that arrives inside the block and raise it as KeyboardInterrupt when the
    block ends (within a second: it wraps only the imports of start-up).

    Why: a KeyboardInterrupt raised inside code that exec() or eval() runs (dataclasses and
    namedtuple build their methods that way while modules import) makes CPython 3.11 remember
    it as unhandled, and the process then dies of SIGINT at exit even after ``main`` caught it
    and returned 130. Raised here, in plain code, it is caught like any other. A SIGINT that
    is ignored (inherited SIG_IGN) or handled by someone else is left alone."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    held: list[int] = []
    try:
        signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    except ValueError:  # not the main thread: signals are not this code's to handle
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if held:  # the interrupt wins, even over the block's own exit (--help's SystemExit)
            raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` (default: the process's arguments) and return its exit status.

    Called as the program (no ``argv``: the ``haggle`` script, ``python -m bot.cli``), it then
    leaves SIGINT at the operating system's default for Python's shut-down: an interrupt there
    ends the process by SIGINT (a shell's 130), where Python's handler could raise it inside an
    atexit callback, which Python reports as ignored and exits 0."""
    code = _main(argv)
    if argv is None and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    return code


def _main(argv: list[str] | None) -> int:
    from bot.errors import HaggleError

    try:
        with interrupts_deferred():
            import logging

            parser = build_parser()
            args = parser.parse_args(argv)
        level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return int(args.func(args) or 0)
    except HaggleError as exc:
        print(f"haggle: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("haggle: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
