"""The documentation: README a short front door, links that resolve, no machine's paths,
commands that the CLI accepts, and docs/commands.md what the code generates (staleness)."""

from __future__ import annotations

import re
import shlex

import pytest

from bot import docgen
from bot.cli import build_parser
from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MACHINE_PATHS = re.compile(r"/work/|/root/|/home/\w|\.\./shared|/tmp/")


def test_readme_is_a_front_door():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    text = "\n".join(lines)
    for command in ("make demo", "make test", "haggle play", "haggle match", "haggle tournament",
                    "haggle report", "haggle bot"):
        assert command in text


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_resolve_and_no_machine_paths(doc):
    text = doc.read_text(encoding="utf-8")
    found = MACHINE_PATHS.findall(text)
    assert not found, f"{doc.name} names machine paths: {found}"
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        assert (doc.parent / target).exists(), f"{doc.name} links to {target}, which is not there"


def _haggle_commands(text: str) -> list[str]:
    """The ``haggle ...`` command lines of a document's sh code blocks (continuations joined)."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = "" if line.lstrip().startswith("#") else line.split(" #", 1)[0]
            for part in re.split(r"\|", line):
                m = re.search(r"(?:^|\s)haggle (.+)", part)
                if m and "-m bot.cli" not in part:
                    commands.append(m.group(1).split(">", 1)[0].strip())
    return commands


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_documented_commands_parse(doc, capsys):
    parser = build_parser()
    commands = _haggle_commands(doc.read_text(encoding="utf-8"))
    for command in commands:
        # placeholders (SERVER_ID, NAME) stand for a value: 1 parses as a number and a name
        argv = ["1" if re.fullmatch(r"[A-Z][A-Z_]+", a) else a for a in shlex.split(command)]
        if argv[0] in ("sync",):  # `@haggle sync` is a Discord message, not the CLI
            continue
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"{doc.name}: `haggle {command}` does not parse: "
                        f"{capsys.readouterr().err.strip()} ({exc})")


def test_bot_check_prints_no_machine_paths():
    report = docgen.bot_check()
    assert report["config"] == "config.toml" and report["database"] == "haggle.db"
    for model in report["models"]:
        assert not model.get("file", "").startswith("/"), model


def test_commands_md_is_what_the_code_generates():
    text = docgen.OUT.read_text(encoding="utf-8")
    written = re.search(r"with Python (\d+\.\d+)", text)
    assert written, "docs/commands.md does not say which Python wrote it"
    if written.group(1) != docgen.python_version():
        pytest.skip(f"docs/commands.md was generated with Python {written.group(1)}; argparse "
                    f"lays help out differently on {docgen.python_version()}")
    assert text == docgen.render(), "docs/commands.md is stale: run `make docs`"
