"""Shared fixtures. Heavy fixtures (the real model, torch) live in the test modules that need them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bot.negotiation.scenario import Scenario

REPO = Path(__file__).resolve().parents[1]
# The real datasets the tests read (CraigslistBargains, Deal or No Deal, AgreeMate's runs), in
# the data cache's layout (craigslist_bargains/test.json, ...). Only tests and CI use this: the
# product reads [data] or `haggle data fetch`'s cache. `haggle data fetch all` fills
# ~/.cache/haggle/datasets, which HAGGLE_TEST_DATA can name.
ENV_TEST_DATA = "HAGGLE_TEST_DATA"
SHARED_DATA = Path(os.environ.get(ENV_TEST_DATA) or REPO / ".." / "shared" / "data").resolve()


def shared_file(*parts: str) -> Path:
    """A file of the test datasets; the test is skipped, in one line naming it, when absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (point {ENV_TEST_DATA} at a folder of the datasets, "
                    f"e.g. ~/.cache/haggle/datasets after `haggle data fetch all`)")
    return path


def shared_data_config(tmp_path: Path, **files: str) -> Path:
    """The repo's config.toml, copied to ``tmp_path`` with [data] KEY = the test dataset at
    ``files[KEY]`` (a path under SHARED_DATA); skips, naming the file, when one is absent."""
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    for key, rel in files.items():
        pattern = re.compile(rf'^{key} = "".*$', re.MULTILINE)
        assert pattern.search(text), f"config.toml has no line {key} = \"\""
        text = pattern.sub(f'{key} = "{shared_file(*rel.split("/"))}"', text)
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True, scope="session")
def _empty_data_cache(tmp_path_factory):
    """The data cache is an empty folder: no test sees what `haggle data fetch` put on this
    machine, and a command that needs a dataset says so instead of reading it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HAGGLE_DATA_HOME", str(tmp_path_factory.mktemp("data-cache")))
        yield


@pytest.fixture
def scenario() -> Scenario:
    """A $200 item: seller target 200 (bottom line 140), buyer target 150 (ceiling 200)."""
    return Scenario.build(id="bike", title="Road bike", listing_price=200, buyer_target=150,
                          description="Aluminium frame, new tyres.", category="bike")


@pytest.fixture
async def world(request, tmp_path):
    """The end-to-end world: the real HaggleBot connected to a loopback Discord
    (tests/discord_e2e.py). Test modules with a ``world`` of their own use theirs."""
    import logging

    from discord_e2e import open_world

    logging.getLogger("discord").setLevel(logging.WARNING)
    async with open_world(request, tmp_path) as w:
        yield w


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The loopback Discord's summary over every end-to-end flow of this run (if any ran)."""
    import sys

    tally_module = sys.modules.get("tests.loopback_discord.tally")
    if tally_module is None or not tally_module.TALLY.worlds:
        return
    terminalreporter.section("loopback Discord")
    for line in tally_module.TALLY.lines():
        terminalreporter.write_line(line)
