"""A ready world for the real HaggleBot: one server, its channels and people, the bot connected.

    async with HaggleWorld.open(tmp_path, spec_path=...) as w:
        ix = await w.invoke(w.alice, w.general, "haggle", role="buyer", item=LONGBOARD)

Used by the end-to-end tests, the watch script and benchmarks. ``restart()`` closes the bot and
connects a new HaggleBot on the same database file (a restart mid-game).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tests.loopback_discord import state as st
from tests.loopback_discord.driver import Driver
from tests.loopback_discord.server import LoopbackDiscord

AGENTS = {
    "rule": {"kind": "rule", "role": "generalist", "seed": 1, "chatter": 0.0},
    "rule-seller": {"kind": "rule", "role": "seller", "seed": 1, "chatter": 0.0},
    "rule-buyer": {"kind": "rule", "role": "buyer", "seed": 1, "chatter": 0.0},
    "llm-seller": {"kind": "llm", "role": "seller", "model": "fake", "max_repairs": 0},
    "llm-buyer": {"kind": "llm", "role": "buyer", "model": "fake", "max_repairs": 0},
}


def haggle_config(*, owner_id: int, bot: dict[str, Any] | None = None,
                  agents: dict[str, Any] | None = None, models: dict[str, Any] | None = None,
                  negotiation: dict[str, Any] | None = None) -> Any:
    """A Config with rule agents, LLM agents on model "fake", and a [bot] section."""
    from bot.bot_config import BotConfig
    from bot.config import parse_config

    raw = {"agents": agents or AGENTS, "models": models or {"fake": {"path": "embedded"}},
           "negotiation": negotiation or {}}
    cfg = parse_config(raw, None)
    table = {"inactivity_timeout_s": 600.0, "haggle_cooldown_s": 0.0, "command_cooldown_s": 0.0,
             "owner_ids": [owner_id], **(bot or {})}
    return replace(cfg, extra={"bot": BotConfig.from_table(table, "bot")})


@dataclass
class HaggleWorld:
    discord: LoopbackDiscord
    drive: Driver
    guild: st.Guild
    general: st.Channel
    owner: st.User
    alice: st.User
    bob: st.User
    db: Path
    cfg: Any
    backend_factory: Any = None
    bot: Any = None
    _task: Any = None

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, tmp_path: Path, *, spec_path: str | Path | None = None,
                   cfg: Any = None, backend_factory: Any = None, sync: bool = True,
                   before_connect: Any = None, **config: Any) -> AsyncIterator[HaggleWorld]:
        """``before_connect(world)`` may add servers, channels or people before the bot logs in."""
        d = await LoopbackDiscord(spec_path=spec_path).start()
        try:
            owner = d.add_user("owner")
            guild = d.add_guild("Loopback server", owner=owner)
            d.owner = owner
            general = d.add_channel(guild, "general")
            alice = d.add_member(guild, d.add_user("alice"))
            bob = d.add_member(guild, d.add_user("bob"))
            if cfg is None and "models" not in config:
                # A tiny stand-in file: the fake backend never reads it, and hashing it for a
                # tournament's set-up snapshot is instant (the embedded model takes seconds).
                from tests.llm_fixtures import write_tiny_gguf

                model = write_tiny_gguf(tmp_path / "fake-model.gguf")
                config["models"] = {"fake": {"path": str(model)}}
            world = cls(d, Driver(d), guild, general, owner, alice, bob, tmp_path / "haggle.db",
                        cfg or haggle_config(owner_id=owner.id, **config),
                        backend_factory=backend_factory)
            if before_connect is not None:
                before_connect(world)
            await world.connect()
            if sync:
                await world.drive.sync(world.bot)
            try:
                yield world
            finally:
                await world.disconnect()
        finally:
            await d.stop()

    def new_bot(self) -> Any:
        from bot.app import make_bot

        return make_bot(self.cfg, store_path=self.db, backend_factory=self.backend_factory)

    async def connect(self, bot: Any = None) -> Any:
        self.bot = bot or self.new_bot()
        self._task = await self.drive.start(self.bot)
        return self.bot

    async def disconnect(self) -> None:
        if self.bot is not None:
            await self.drive.stop(self.bot, self._task)
            self.bot = None

    async def restart(self) -> Any:
        """Close the bot and connect a new one on the same database (a restart mid-game)."""
        await self.disconnect()
        return await self.connect()

    # shortcuts
    async def invoke(self, user: st.User, channel: st.Channel, command: str, **kw: Any) -> Any:
        return await self.drive.invoke(user, channel, command, **kw)

    async def say(self, user: st.User, channel: st.Channel, text: str, *,
                  timeout: float = 30.0) -> dict[str, Any]:
        """``user`` types ``text``; returns the bot's next message in that channel."""
        before = len(self.drive.bot_messages(channel))
        await self.drive.say(user, channel, text)
        return await self.drive.next_bot_message(channel, after=before, timeout=timeout)

    def thread_of(self, ix: st.Interaction) -> st.Channel:
        """The thread a /haggle (or /tournament run) answer links to."""
        import re

        for text in ix.texts + [e.get("description") or "" for m in ix.replies
                                for e in m.get("embeds") or []]:
            match = re.search(r"<#(\d+)>", text)
            if match:
                return self.discord.channels[int(match.group(1))]
        raise LookupError(f"no thread linked in {ix.texts}")
