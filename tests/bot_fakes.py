"""Small fakes of the Discord objects the bot's cogs touch, and a harness to drive them.

dpytest does not cover slash commands, so the tests (and bench/bot_event_loop.py) call the real
cogs' command callbacks and listeners with these stand-ins. They record what the bot sent,
edited and deleted, and can fail the way Discord does (a deleted thread answers 404, a missing
permission 403). ``invoke`` runs a command like discord.py's tree does: its checks first, then
the callback, errors to the tree's ``on_error``.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import discord
from discord import app_commands
from discord.utils import maybe_coroutine

from bot.app import HaggleBot
from bot.bot_config import BotConfig
from bot.config import parse_config

_ids = itertools.count(10_000)

LONGBOARD = "e5cd53dc-424c-4197-8eb8-ed8861b19e0d"  # agreemate: listed $200, bottom line $140

AGENTS = {
    "rule": {"kind": "rule", "role": "generalist", "seed": 1, "chatter": 0.0},
    "rule-seller": {"kind": "rule", "role": "seller", "seed": 1, "chatter": 0.0},
    "rule-buyer": {"kind": "rule", "role": "buyer", "seed": 1, "chatter": 0.0},
    "llm-seller": {"kind": "llm", "role": "seller", "model": "fake", "max_repairs": 0},
    "llm-buyer": {"kind": "llm", "role": "buyer", "model": "fake", "max_repairs": 0},
}


def make_config(*, bot: dict[str, Any] | None = None, negotiation: dict[str, Any] | None = None,
                agents: dict[str, Any] | None = None, models: dict[str, Any] | None = None) -> Any:
    """A Config with rule agents, one LLM agent on model "fake", and a [bot] section."""
    raw = {"agents": agents or AGENTS, "models": models or {"fake": {"path": "embedded"}},
           "negotiation": negotiation or {}}
    cfg = parse_config(raw, None)
    table = {"inactivity_timeout_s": 600.0, "haggle_cooldown_s": 0.0, "command_cooldown_s": 0.0,
             "owner_ids": [1], **(bot or {})}
    return replace(cfg, extra={"bot": BotConfig.from_table(table, "bot")})


def _http_error(cls: type, status: int, text: str) -> discord.HTTPException:
    return cls(SimpleNamespace(status=status, reason=text), text)


class FakeRole:
    def __init__(self, name: str) -> None:
        self.id = next(_ids)
        self.name = name


class FakeMember:
    def __init__(self, name: str, *, bot: bool = False, roles: tuple[str, ...] = (),
                 manage_guild: bool = False, member_id: int | None = None) -> None:
        self.id = member_id or next(_ids)
        self.name = name
        self.display_name = name
        self.global_name = name
        self.bot = bot
        self.roles = [FakeRole(r) for r in roles]
        self.manage_guild = manage_guild

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def __str__(self) -> str:
        return self.name


THE_BOT = FakeMember("haggle", bot=True, member_id=1)  # the author of what the bot sends


class FakeGuild:
    def __init__(self, name: str = "Test server") -> None:
        self.id = next(_ids)
        self.name = name


class FakeMessage:
    def __init__(self, channel: FakeChannel, content: str | None = None, *,
                 author: Any = None, embed: Any = None, view: Any = None, file: Any = None,
                 reference: Any = None) -> None:
        self.id = next(_ids)
        self.channel = channel
        self.guild = channel.guild
        self.content = content or ""
        self.author = author
        self.embed = embed
        self.view = view
        self.file = file
        self.reference = reference
        self.edits: list[dict[str, Any]] = []
        self.deleted = False

    async def edit(self, **changes: Any) -> FakeMessage:
        import asyncio

        self.channel.check_alive()
        self.edits.append(changes)
        self.channel.calls.append(("edit", self.id))
        self.channel.call_times.append(asyncio.get_running_loop().time())
        if "content" in changes:
            self.content = changes["content"]
        if "view" in changes:
            self.view = changes["view"]
        if "embed" in changes:
            self.embed = changes["embed"]
        return self

    async def delete(self) -> None:
        self.deleted = True

    async def reply(self, content: str | None = None, **kwargs: Any) -> FakeMessage:
        kwargs.pop("mention_author", None)
        return await self.channel.send(content, reference=self, **kwargs)


class FakeChannel:
    """A text channel, a thread (``parent`` set) or a DM channel (``guild`` None)."""

    def __init__(self, guild: FakeGuild | None, *, name: str = "general",
                 type: discord.ChannelType = discord.ChannelType.text,
                 parent: FakeChannel | None = None) -> None:
        self.id = next(_ids)
        self.guild = guild
        self.name = name
        self.type = type
        self.parent = parent
        self.parent_id = parent.id if parent else None
        self.messages: list[FakeMessage] = []
        self.threads: list[FakeChannel] = []
        self.calls: list[tuple[str, int]] = []  # ("send" | "edit", message id), in order
        self.call_times: list[float] = []
        self.deleted = False
        self.forbid_threads = False
        self.forbid_send = False

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    def check_alive(self) -> None:
        if self.deleted:
            raise _http_error(discord.NotFound, 404, "Unknown Channel")

    async def send(self, content: str | None = None, *, embed: Any = None, view: Any = None,
                   file: Any = None, reference: Any = None, **kwargs: Any) -> FakeMessage:
        import asyncio

        self.check_alive()
        if self.forbid_send:
            raise _http_error(discord.Forbidden, 403, "Missing Permissions")
        if content is not None and len(content) > 2000:
            raise _http_error(discord.HTTPException, 400, "content longer than 2000")
        message = FakeMessage(self, content, embed=embed, view=view, file=file,
                              reference=reference, author=THE_BOT)
        self.messages.append(message)
        self.calls.append(("send", message.id))
        self.call_times.append(asyncio.get_running_loop().time())
        return message

    async def create_thread(self, *, name: str, type: Any = None, **kwargs: Any) -> FakeChannel:
        if self.forbid_threads:
            raise _http_error(discord.Forbidden, 403, "Missing Permissions")
        assert len(name) <= 100, name
        thread = FakeChannel(self.guild, name=name, type=discord.ChannelType.public_thread,
                             parent=self)
        self.threads.append(thread)
        return thread

    async def history(self, *, limit: int = 100) -> Any:
        """The channel's messages, newest first, as discord.py's ``history`` gives them."""
        for message in list(reversed(self.messages))[:limit]:
            yield message

    def get_partial_message(self, message_id: int) -> FakeMessage:
        for message in self.messages:
            if message.id == message_id:
                return message
        raise AssertionError(f"no message {message_id} in channel {self.id}")

    @contextlib.asynccontextmanager
    async def _typing(self) -> Any:
        yield

    def typing(self) -> Any:
        return self._typing()

    async def delete(self) -> None:
        self.deleted = True

    # what the tests read
    @property
    def texts(self) -> list[str]:
        return [m.content for m in self.messages if m.content]

    @property
    def embeds(self) -> list[Any]:
        return [m.embed for m in self.messages if m.embed is not None]


class FakeResponse:
    def __init__(self, interaction: FakeInteraction) -> None:
        self._interaction = interaction
        self._done = False
        self.deferred: dict[str, Any] | None = None

    def is_done(self) -> bool:
        return self._done

    async def defer(self, **kwargs: Any) -> None:
        assert not self._done, "interaction answered twice"
        self._done = True
        self.deferred = kwargs

    async def send_message(self, content: str | None = None, **kwargs: Any) -> None:
        assert not self._done, "interaction answered twice"
        self._done = True
        self._interaction.sent.append({"content": content, **kwargs})


class FakeFollowup:
    def __init__(self, interaction: FakeInteraction) -> None:
        self._interaction = interaction

    async def send(self, content: str | None = None, **kwargs: Any) -> None:
        assert self._interaction.response.is_done(), "follow-up before the first response"
        self._interaction.sent.append({"content": content, **kwargs})


ALL_PERMISSIONS = discord.Permissions.all()


class FakeInteraction:
    def __init__(self, client: Any, user: FakeMember, channel: FakeChannel, *,
                 created_at: datetime | None = None, app_permissions: Any = None,
                 namespace: dict[str, Any] | None = None, message: Any = None) -> None:
        self.id = next(_ids)
        self.client = client
        self.user = user
        self.channel = channel
        self.guild = channel.guild
        self.created_at = created_at or datetime.now(UTC)
        perms = discord.Permissions.none()
        perms.manage_guild = user.manage_guild
        self.permissions = perms
        self.app_permissions = app_permissions if app_permissions is not None else ALL_PERMISSIONS
        self.namespace = SimpleNamespace(**(namespace or {}))
        self.message = message
        self.command = None
        self.response = FakeResponse(self)
        self.followup = FakeFollowup(self)
        self.extras: dict[str, Any] = {}
        self.sent: list[dict[str, Any]] = []
        self.original_deleted = False

    async def delete_original_response(self) -> None:
        self.original_deleted = True

    async def edit_original_response(self, **changes: Any) -> None:
        self.sent.append({"edit": True, **changes})

    @property
    def guild_id(self) -> int | None:
        return self.guild.id if self.guild else None

    @property
    def channel_id(self) -> int:
        return self.channel.id

    @property
    def text(self) -> str:
        """Everything the person was told, texts and embed titles/descriptions."""
        out = []
        for s in self.sent:
            if s.get("content"):
                out.append(s["content"])
            if s.get("embed") is not None:
                out.append(f"{s['embed'].title} {s['embed'].description or ''}")
        return "\n".join(out)


async def invoke(command: app_commands.Command, interaction: FakeInteraction,
                 **params: Any) -> None:
    """Run ``command`` as discord.py's tree does: checks, then ``callback(cog, interaction,
    **params)``; an error goes to the bot tree's ``on_error``."""
    interaction.command = command
    try:
        for check in command.checks:
            if not await maybe_coroutine(check, interaction):
                raise app_commands.CheckFailure("check failed")
        await command.callback(command.binding, interaction, **params)
    except app_commands.AppCommandError as exc:
        await interaction.client.tree.on_error(interaction, exc)
    except Exception as exc:  # noqa: BLE001 - discord.py wraps any error the same way
        await interaction.client.tree.on_error(interaction,
                                               app_commands.CommandInvokeError(command, exc))


class World:
    """A bot with one server, a text channel and the people in it."""

    def __init__(self, bot: HaggleBot) -> None:
        self.bot = bot
        self.guild = FakeGuild()
        self.channel = FakeChannel(self.guild)
        self._channels: dict[int, FakeChannel] = {self.channel.id: self.channel}
        bot.get_channel = self.get_channel  # the bot's cache, as far as these tests go

    def get_channel(self, channel_id: int) -> FakeChannel | None:
        if channel_id in self._channels:
            return self._channels[channel_id]
        for channel in list(self._channels.values()):
            for thread in channel.threads:
                self._channels[thread.id] = thread
        return self._channels.get(channel_id)

    @property
    def games(self) -> Any:
        return self.bot.get_cog("Games")

    def person(self, name: str, **kwargs: Any) -> FakeMember:
        return FakeMember(name, **kwargs)

    def interaction(self, user: FakeMember, channel: FakeChannel | None = None,
                    **kwargs: Any) -> FakeInteraction:
        return FakeInteraction(self.bot, user, channel or self.channel, **kwargs)

    async def haggle(self, user: FakeMember, **params: Any) -> tuple[FakeInteraction, FakeChannel | None]:
        """/haggle as ``user``; returns the interaction and the game's new thread (if any)."""
        before = len(self.channel.threads)
        interaction = self.interaction(user, namespace={"role": params.get("role", "buyer")})
        await invoke(self.games.haggle, interaction, **params)
        thread = self.channel.threads[-1] if len(self.channel.threads) > before else None
        if thread is not None:
            self._channels[thread.id] = thread
        return interaction, thread

    async def say(self, user: FakeMember, channel: FakeChannel, text: str) -> FakeMessage:
        """``user`` types ``text`` in ``channel``; the bot's listeners see it."""
        message = FakeMessage(channel, text, author=user)
        await self.games.on_message(message)
        return message

    async def press(self, user: FakeMember, thread: FakeChannel, action: str) -> FakeInteraction:
        """``user`` clicks a game button, found on the thread's opening card by its action."""
        from bot.cogs.games import GameButton

        intro = next(m for m in thread.messages if m.view is not None)
        button = next(i for i in intro.view.children if i.custom_id.split(":")[2] == action)
        match = GameButton.__discord_ui_compiled_template__.fullmatch(button.custom_id)
        item = await GameButton.from_custom_id(self.interaction(user, thread), button.item, match)
        interaction = self.interaction(user, thread, message=intro)
        await item.callback(interaction)
        return interaction


async def start_bot(tmp_path: Path, cfg: Any = None, *, db: Path | None = None,
                    backend_factory: Any = None) -> HaggleBot:
    """A HaggleBot set up as at a real start (setup_hook), but never connected."""
    bot = HaggleBot(cfg or make_config(), store_path=db or tmp_path / "haggle.db",
                    backend_factory=backend_factory)
    await bot.__aenter__()  # what `async with bot` does: bind the bot to this event loop
    await bot.setup_hook()
    return bot
