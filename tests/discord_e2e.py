"""Fixtures of the end-to-end tests: the real HaggleBot against the loopback Discord.

Each test gets a ``world`` (the fixture in conftest.py; tests/loopback_discord/world.py). When the test ends, whatever the
loopback refused that the test did not expect (``discord.take(code)``), every request body the
OpenAPI description rejects and every private reply shown publicly fail the test, and all of it
goes into the summary printed at the end of the run.
"""

from __future__ import annotations

import contextlib
from typing import Any

from conftest import shared_file

from tests.loopback_discord.tally import TALLY
from tests.loopback_discord.world import HaggleWorld

LONGBOARD = "e5cd53dc-424c-4197-8eb8-ed8861b19e0d"  # agreemate: listed $200, bottom line $140


def spec_path() -> Any:
    return shared_file("discord-api-spec", "openapi.json")


@contextlib.asynccontextmanager
async def open_world(request: Any, tmp_path: Any, *, leaks_expected: bool = False,
                     **kwargs: Any):
    async with HaggleWorld.open(tmp_path, spec_path=spec_path(), **kwargs) as world:
        try:
            yield world
        finally:
            d = world.discord
            d.leaks_expected = leaks_expected
            TALLY.add(d, test=request.node.name)
    problems = [str(p) for p in d.schema_problems] + [str(r) for r in d.unexpected_errors]
    if not leaks_expected:
        problems += [f"private reply shown publicly: {p}" for p in d.private_shown_publicly]
    assert not problems, "the loopback Discord refused or flagged:\n" + "\n".join(problems)
