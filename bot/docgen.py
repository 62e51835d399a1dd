"""Generated documentation: ``docs/commands.md`` from the code, never pasted by hand.

    python -m bot.docgen            # (re)write docs/commands.md (`make docs`)
    python -m bot.docgen --check    # exit 1 if docs/commands.md is not what the code gives

It holds every ``haggle`` command's ``--help`` (at a fixed width), the slash commands the
Discord bot registers, and ``haggle bot --check`` for the shipped config, run from the
repository root so that its paths are relative (no machine's paths). argparse's layout
differs between Python versions, so the file names the version that wrote it;
tests/test_docs.py compares a fresh generation with it on that version.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "commands.md"
WIDTH = 100


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _walk(parser: argparse.ArgumentParser, name: str) -> Iterator[tuple[str, str]]:
    yield name, parser.format_help()
    for sub, child in sorted(_subcommands(parser).items()):
        yield from _walk(child, f"{name} {sub}")


@contextlib.contextmanager
def _environment(**values: str | None) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def command_help() -> list[tuple[str, str]]:
    """(``haggle ...``, its --help) for the program and every (nested) subcommand."""
    from bot.cli import build_parser

    with _environment(COLUMNS=str(WIDTH)):
        return list(_walk(build_parser(), "haggle"))


def bot_check() -> dict[str, Any]:
    """``haggle bot --check`` for the repository's config.toml, from the repository root."""
    from bot.bot_config import bot_config
    from bot.commands.bot import check
    from bot.config import load_config

    cwd = Path.cwd()
    os.chdir(REPO)
    try:
        with _environment(DISCORD_TOKEN=None, HAGGLE_CONFIG=None):
            cfg = load_config(REPO / "config.toml")
            settings = bot_config(cfg)
            report, _ok = check(cfg, settings, cfg.resolve_path(cfg.store.path))
    finally:
        os.chdir(cwd)
    return report


def _slash_rows(commands: list[dict[str, Any]]) -> list[str]:
    rows = ["| command | option | type | required | what |", "|---|---|---|---|---|"]

    def walk(prefix: str, options: list[dict[str, Any]], description: str) -> None:
        subs = [o for o in options if o["type"] in ("subcommand", "subcommand_group")]
        if subs:
            for sub in subs:
                walk(f"{prefix} {sub['name']}", sub.get("options", []), sub["description"])
            return
        rows.append(f"| `{prefix}` | | | | {description} |")
        for o in options:
            kind = o["type"] + (" (" + ", ".join(map(str, o["choices"])) + ")"
                                if o.get("choices") else "")
            rows.append(f"| | `{o['name']}` | {kind} | {'yes' if o.get('required') else 'no'} "
                        f"| {o['description']} |")

    for command in commands:
        walk("/" + command["name"], command.get("options", []), command["description"])
    return rows


def render() -> str:
    parts = [
        "# Commands",
        "",
        "Generated from the code by `make docs` (`python -m bot.docgen`) with Python "
        f"{python_version()}; `tests/test_docs.py` fails when this file is stale. Do not edit "
        "it by hand.",
        "",
    ]
    helps = command_help()
    parts += [f"- [`{name}`](#{name.replace(' ', '-')})" for name, _ in helps] + [""]
    for name, text in helps:
        parts += [f"## {name}", "", "```text", text.rstrip(), "```", ""]
    report = bot_check()
    parts += ["## Slash commands", "",
              "What `haggle bot --sync` registers (from the bot's command tree):", ""]
    parts += _slash_rows(report["commands"]) + [""]
    parts += ["## `haggle bot --check`", "",
              "For the shipped `config.toml`, run from the repository root with no token set "
              "(it then also says `note: DISCORD_TOKEN is not set` on stderr):", "",
              "```json", json.dumps(report, indent=2), "```", ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.docgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="compare with docs/commands.md instead of writing it")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if OUT.is_file() and OUT.read_text(encoding="utf-8") == text:
            print(f"{OUT.relative_to(REPO)} is up to date")
            return 0
        print(f"{OUT.relative_to(REPO)} is stale: run `make docs`", file=sys.stderr)
        return 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
