"""Watch the bot work without a Discord token: the real HaggleBot against the loopback Discord.

    python -m tests.loopback_discord.watch                 # a scripted game, printed as it goes
    python -m tests.loopback_discord.watch --embedded      # the bot's words from the embedded model
    python -m tests.loopback_discord.watch --interactive   # you are alice: type, /commands, clicks

Interactive lines: ``/haggle role:seller item:random`` (any slash command, options as
name:value), ``click accept`` (or walk, status: the game's buttons), anything else is typed into
alice's game thread (or #general when she has none). ``quit`` ends. Everything the bot shows is
printed; private (ephemeral) replies are marked. Nothing leaves 127.0.0.1; the database lives in
a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from tests.conftest import SHARED_DATA
from tests.loopback_discord import state as st
from tests.loopback_discord.driver import text_of
from tests.loopback_discord.world import AGENTS, HaggleWorld, haggle_config

SPEC = SHARED_DATA / "discord-api-spec" / "openapi.json"  # $HAGGLE_TEST_DATA (tests/conftest.py)
LONGBOARD = "e5cd53dc-424c-4197-8eb8-ed8861b19e0d"


class Printer:
    """Prints what people see, channel by channel."""

    def __init__(self, world: HaggleWorld, out: Any = sys.stdout) -> None:
        self.world = world
        self.out = out
        self.shown: dict[str, list[str]] = {}  # message id -> the lines printed so far

    def place(self, channel_id: int) -> str:
        channel = self.world.discord.channels.get(channel_id)
        if channel is None:
            return "?"
        return f"#{channel.name}" if not channel.is_thread else f"[thread {channel.name}]"

    def __call__(self, kind: str, msg: dict[str, Any]) -> None:
        if msg.get("flags", 0) & st.LOADING:
            return  # "haggle is thinking…"
        who = msg["author"]["username"]
        private = " (only you see this)" if msg.get("flags", 0) & st.EPHEMERAL else ""
        edited = " (edited)" if kind == "edit" else ""
        buttons = [c.get("label") for row in msg.get("components") or []
                   for c in row.get("components") or []]
        body = text_of(msg) + (f"\n[buttons: {' | '.join(buttons)}]" if buttons else "")
        lines = body.splitlines() or [""]
        before = self.shown.get(msg["id"], [])
        self.shown[msg["id"]] = lines
        if kind == "edit":  # print what changed: new lines, or what went away
            new = [line for line in lines if line not in before]
            if not new:
                gone = [line for line in before if line not in lines]
                new = [f"(removed: {gone[-1][:80]})"] if gone else []
            lines = new
            if not lines:
                return
        head = f"{self.place(int(msg['channel_id']))} {who}{private}{edited}:"
        print(head, file=self.out)
        for line in lines:
            print(textwrap.indent(textwrap.fill(line, 100) if line else "", "    "), file=self.out)
        self.out.flush()

    def person(self, user: st.User, channel: st.Channel, text: str) -> None:
        print(f"{self.place(channel.id)} {user.name}: {text}", file=self.out)
        self.out.flush()


def game_thread(world: HaggleWorld, user: st.User) -> st.Channel | None:
    for ix in reversed(list(world.discord.interactions.values())):
        if ix.user is user and ix.data.get("name") in ("haggle", "daily"):
            try:
                return world.thread_of(ix)
            except LookupError:
                continue
    return None


async def command(world: HaggleWorld, printer: Printer, user: st.User, channel: st.Channel,
                  line: str) -> None:
    words = line[1:].split()
    names = [w for w in words if ":" not in w]
    options: dict[str, Any] = {}
    for w in words:
        if ":" in w:
            key, value = w.split(":", 1)
            options[key] = value
    printer.person(user, channel, line)
    await world.drive.invoke(user, channel, " ".join(names), timeout=120, **options)


async def click(world: HaggleWorld, printer: Printer, user: st.User, action: str, *,
                owner: st.User | None = None) -> None:
    thread = game_thread(world, owner or user)
    if thread is None:
        print("(no game to click in: start one with /haggle)")
        return
    try:
        intro = world.drive.message_with(thread, f"haggle:game:{action}")
    except LookupError:
        print("(that game has no buttons left)")
        return
    print(f"{printer.place(thread.id)} {user.name} clicks {action}")
    before = len(world.drive.bot_messages(thread))
    ix = await world.drive.click(user, intro, world.drive.button(intro, f"haggle:game:{action}"),
                                 timeout=120)
    if ix.response_type == 6:  # a deferred update: what it did shows up in the thread
        try:
            await world.drive.next_bot_message(thread, after=before, timeout=30)
        except TimeoutError:
            pass
        await asyncio.sleep(0.3)  # the result card's edits


async def say(world: HaggleWorld, printer: Printer, user: st.User, text: str) -> None:
    thread = game_thread(world, user) or world.general
    before = len(world.drive.bot_messages(thread))
    await world.drive.say(user, thread, text)
    try:
        await world.drive.next_bot_message(thread, after=before, timeout=120)
    except TimeoutError:
        pass
    await asyncio.sleep(0.3)  # a result card and its edits


async def scripted(world: HaggleWorld, printer: Printer) -> None:
    alice = world.alice
    await command(world, printer, alice, world.general,
                  f"/haggle role:buyer item:{LONGBOARD} agent:{world.agent}")
    await asyncio.sleep(0.3)
    for text in ("hi! is the board still available?", "would you take $120?", "how about $135?"):
        await say(world, printer, alice, text)
    await click(world, printer, world.bob, "accept", owner=alice)  # not bob's game
    await click(world, printer, alice, "status")
    await click(world, printer, alice, "accept")
    await asyncio.sleep(0.5)
    await command(world, printer, alice, world.general, "/stats")
    await command(world, printer, alice, world.general, "/leaderboard")


async def interactive(world: HaggleWorld, printer: Printer) -> None:
    loop = asyncio.get_running_loop()
    print("You are alice in #general. /commands, 'click accept|walk|status', text, or 'quit'.")
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline))
        if not line or line.strip() == "quit":
            return
        line = line.strip()
        if not line:
            continue
        try:
            if line.startswith("/"):
                await command(world, printer, world.alice, world.general, line)
            elif line.startswith("click "):
                await click(world, printer, world.alice, line.split()[1])
            else:
                await say(world, printer, world.alice, line)
        except (LookupError, ValueError) as exc:
            print(f"({exc})")


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.loopback_discord.watch",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedded", action="store_true",
                        help="play against the hybrid `seller` agent on the embedded model")
    parser.add_argument("--interactive", action="store_true", help="type as alice")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config: dict[str, Any] = {}
    agent = "rule-seller"
    if args.embedded:
        agent = "seller"
        config = {"models": {"default": {"path": "embedded", "n_threads": 1},
                             "fake": {"path": "embedded"}},
                  "agents": {**AGENTS, "seller": {"kind": "llm", "role": "seller",
                                                  "model": "default", "policy": "hybrid"}}}
    with tempfile.TemporaryDirectory(prefix="haggle-watch-") as tmp:
        spec = SPEC if SPEC.exists() else None
        async with HaggleWorld.open(Path(tmp), spec_path=spec,
                                    cfg=haggle_config(owner_id=1, **config) if config else None) as world:
            world.agent = agent
            printer = Printer(world)
            world.discord.observers.append(printer)
            print(f"loopback Discord on {world.discord.api_base}; the bot is connected and its "
                  f"commands synced.\n")
            await (interactive if args.interactive else scripted)(world, printer)
            d = world.discord
            print(f"\n{len(d.requests)} requests; {len(d.schema_problems)} schema violations, "
                  f"{len(d.unexpected_errors)} refusals, {len(d.private_shown_publicly)} private "
                  f"replies shown publicly")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
