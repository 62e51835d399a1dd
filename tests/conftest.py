"""Shared fixtures. Heavy fixtures (the real model, torch) live in the test modules that need them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.negotiation.scenario import Scenario

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


def shared_file(*parts: str) -> Path:
    """A file of ../shared/data; the test is skipped, saying why, when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not on this machine (the shared datasets live beside the checkout)")
    return path


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
