"""Fixtures of the end-to-end tests: the real HaggleBot against the loopback Discord.

Each test gets a ``world`` (the fixture in conftest.py; tests/loopback_discord/world.py). When the
test ends, whatever the
loopback refused that the test did not expect (``discord.take(code)``), every request body the
OpenAPI description rejects and every private reply shown publicly fail the test, and all of it
goes into the summary printed at the end of the run.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from conftest import shared_file

from tests.loopback_discord.tally import TALLY
from tests.loopback_discord.world import HaggleWorld

LONGBOARD = "e5cd53dc-424c-4197-8eb8-ed8861b19e0d"  # agreemate: listed $200, bottom line $140


def spec_path() -> Any:
    return shared_file("discord-api-spec", "openapi.json")


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@contextlib.contextmanager
def only_loopback() -> Any:
    """Every TCP connection made meanwhile must go to 127.0.0.1; others are refused (OSError)
    and listed in what it yields."""
    real = socket.socket.connect
    refused: list[str] = []

    def connect(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK_HOSTS:
            refused.append(repr(address))
            raise OSError(f"the end-to-end tests reach only 127.0.0.1, not {address!r}")
        return real(sock, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    try:
        yield refused
    finally:
        socket.socket.connect = real  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def open_world(request: Any, tmp_path: Any, *, leaks_expected: bool = False,
                     **kwargs: Any):
    with only_loopback() as refused:
        async with HaggleWorld.open(tmp_path, spec_path=spec_path(), **kwargs) as world:
            try:
                yield world
            finally:
                d = world.discord
                d.leaks_expected = leaks_expected
                d.outside_connections = refused
                TALLY.add(d, test=request.node.name)
    problems = [str(p) for p in d.schema_problems] + [str(r) for r in d.unexpected_errors]
    problems += [f"a connection beyond 127.0.0.1: {a}" for a in refused]
    if not leaks_expected:
        problems += [f"private reply shown publicly: {p}" for p in d.private_shown_publicly]
    assert not problems, "the loopback Discord refused or flagged:\n" + "\n".join(problems)
