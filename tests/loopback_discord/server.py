"""The loopback Discord: Discord's HTTP API v10 and gateway on 127.0.0.1, with Discord's rules.

``LoopbackDiscord`` owns the world (state.py), serves the REST routes the bot uses (rest.py)
and the gateway (gateway.py) from one aiohttp server, and records every refusal it made.
``install()`` points the unmodified discord.py client at it: ``discord.http.Route.BASE`` and
``DiscordWebSocket.DEFAULT_GATEWAY`` are read at use time, so redirecting them is enough.

What it enforces (each refusal is recorded in ``errors`` with Discord's code):
- the 3 s initial-response deadline (10062), a second acknowledgement (40060), 15-minute
  interaction tokens (50027), autocomplete answers of at most 25 choices within 3 s;
- the follow-up visibility rule: the first follow-up after a deferral replaces the "thinking"
  message and keeps the deferral's visibility whatever its own flags say (a follow-up that asked
  to be ephemeral after a public deferral is counted in ``private_shown_publicly``);
- message, embed and component limits; thread type vs parent type (50024); the active-thread
  cap (160006, settable); missing permissions (50013); only synced commands are invocable;
- every request body validated against Discord's OpenAPI description (``schema_problems``).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yarl
from aiohttp import web

from tests.loopback_discord import state as st
from tests.loopback_discord.gateway import Gateway
from tests.loopback_discord.spec import Problem, SpecValidator

RESPONSE_DEADLINE_S = 3.0
TOKEN_LIFETIME_S = 15 * 60
EVERYONE_PERMISSIONS = (st.PERMISSIONS["view_channel"] | st.PERMISSIONS["send_messages"]
                        | st.PERMISSIONS["read_message_history"] | st.PERMISSIONS["embed_links"]
                        | st.PERMISSIONS["attach_files"] | st.PERMISSIONS["create_public_threads"]
                        | st.PERMISSIONS["send_messages_in_threads"] | st.PERMISSIONS["add_reactions"])


@dataclass
class Refusal:
    """A request Discord answered with an error."""

    status: int
    code: int
    route: str
    message: str
    expected: bool = False   # a test asked for it (``take``)

    def __str__(self) -> str:
        return f"{self.status} {self.code} {self.route}: {self.message}"


class DiscordError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class LoopbackDiscord:
    """A Discord of one's own on 127.0.0.1."""

    def __init__(self, *, spec_path: str | Path | None = None, token: str | None = None,
                 active_thread_cap: int = 1000) -> None:
        self.ids = st.Snowflakes()
        self.token = token or f"loopback.{secrets.token_hex(12)}"
        self.application_id = self.ids()
        self.bot_user = st.User(self.application_id, "haggle", bot=True)
        self.users: dict[int, st.User] = {self.bot_user.id: self.bot_user}
        self.guilds: dict[int, st.Guild] = {}
        self.channels: dict[int, st.Channel] = {}
        self.interactions: dict[int, st.Interaction] = {}
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.active_thread_cap = active_thread_cap
        self.validator = SpecValidator(spec_path) if spec_path else None
        self.schema_problems: list[Problem] = []
        self.errors: list[Refusal] = []
        self.private_shown_publicly: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.rate_limits: list[tuple[str, str, float]] = []  # (method, path regex, retry_after)
        self.rate_limited: list[str] = []
        # Called with ("new" | "edit", message) for every message shown (the watch script).
        self.observers: list[Any] = []
        self.files: dict[str, bytes] = {}        # attachment id -> the uploaded bytes
        self.owner: st.User | None = None        # the application's owner (oauth2/applications)
        self.recommended_shards = 1              # what GET /gateway/bot recommends
        self.leaks_expected = False              # a test that shows a leak on purpose
        self.outside_connections: list[str] = []  # connections beyond 127.0.0.1 (the e2e guard)
        self.clock_offset = 0.0
        self.response_deadline_s = RESPONSE_DEADLINE_S
        self.gateway = Gateway(self)
        self.changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._saved: tuple[str, Any] | None = None

    # ----------------------------------------------------------------- running

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def now(self) -> float:
        """The loopback's clock (tests move it forward with ``advance``)."""
        return time.monotonic() + self.clock_offset

    def advance(self, seconds: float) -> None:
        self.clock_offset += seconds

    async def start(self) -> LoopbackDiscord:
        from tests.loopback_discord.rest import add_routes

        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_get("/gateway", self.gateway.handle)
        add_routes(app, self)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        self.uninstall()
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def install(self) -> None:
        """Point discord.py at this loopback (undo with ``uninstall``)."""
        import discord.gateway
        import discord.http

        if self._saved is None:
            self._saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        discord.http.Route.BASE = self.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)

    def uninstall(self) -> None:
        import discord.gateway
        import discord.http

        if self._saved is not None:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self._saved
            self._saved = None

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, predicate: Any, timeout: float = 30.0) -> Any:
        """Wait until ``predicate()`` is truthy (checked after every request the bot makes)."""
        async def waiting() -> Any:
            async with self.changed:
                while not (value := predicate()):
                    # woken by every request; polled too, for what the gateway changes
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.changed.wait(), 0.05)
                return value

        return await asyncio.wait_for(waiting(), timeout)

    # ----------------------------------------------------------------- the world

    def add_user(self, name: str, *, bot: bool = False) -> st.User:
        user = st.User(self.ids(), name, bot=bot)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str = "Loopback server", *, owner: st.User | None = None) -> st.Guild:
        owner = owner or self.add_user(f"{name} owner")
        gid = self.ids()
        guild = st.Guild(gid, name, owner.id)
        guild.roles[gid] = st.Role(gid, "@everyone", EVERYONE_PERMISSIONS)
        bot_role = st.Role(self.ids(), "haggle", st.ALL_PERMISSIONS & ~st.ADMINISTRATOR, position=1)
        guild.roles[bot_role.id] = bot_role
        guild.members[owner.id] = []
        guild.members[self.bot_user.id] = [bot_role.id]
        self.guilds[gid] = guild
        return guild

    def add_role(self, guild: st.Guild, name: str, *permissions: str) -> st.Role:
        bits = 0
        for p in permissions:
            bits |= st.PERMISSIONS[p]
        role = st.Role(self.ids(), name, bits, position=len(guild.roles))
        guild.roles[role.id] = role
        return role

    def add_member(self, guild: st.Guild, user: st.User, *roles: st.Role) -> st.User:
        guild.members[user.id] = [r.id for r in roles]
        return user

    def add_channel(self, guild: st.Guild, name: str, type: int = st.TEXT, *,
                    parent: st.Channel | None = None, owner: st.User | None = None) -> st.Channel:
        channel = st.Channel(self.ids(), type, name, guild.id,
                             parent_id=parent.id if parent else None,
                             owner_id=owner.id if owner else None)
        guild.channels[channel.id] = channel
        self.channels[channel.id] = channel
        return channel

    def dm_channel(self, user: st.User) -> st.Channel:
        for c in self.channels.values():
            if c.type == st.DM and c.recipient is user:
                return c
        channel = st.Channel(self.ids(), st.DM, "", None, recipient=user)
        self.channels[channel.id] = channel
        return channel

    def guild_of(self, channel: st.Channel) -> st.Guild | None:
        return self.guilds.get(channel.guild_id) if channel.guild_id else None

    def threads(self, channel: st.Channel) -> list[st.Channel]:
        return [c for c in self.channels.values() if c.parent_id == channel.id and c.is_thread]

    def active_threads(self, guild: st.Guild) -> list[st.Channel]:
        return [c for c in guild.channels.values() if c.is_thread and not c.archived]

    def guild_create_payload(self, guild: st.Guild) -> dict[str, Any]:
        members = [guild.member_payload(self.users[uid]) for uid in guild.members]
        return {"id": str(guild.id), "name": guild.name, "icon": None, "splash": None,
                "discovery_splash": None, "owner_id": str(guild.owner_id), "region": None,
                "afk_channel_id": None, "afk_timeout": 300, "verification_level": 0,
                "default_message_notifications": 0, "explicit_content_filter": 0,
                "roles": [r.payload() for r in guild.roles.values()], "emojis": [], "stickers": [],
                "features": [], "mfa_level": 0, "application_id": None, "system_channel_id": None,
                "system_channel_flags": 0, "rules_channel_id": None, "max_members": 500000,
                "vanity_url_code": None, "description": None, "banner": None, "premium_tier": 0,
                "premium_subscription_count": 0, "preferred_locale": "en-US",
                "public_updates_channel_id": None, "nsfw_level": 0,
                "premium_progress_bar_enabled": False, "joined_at": st.iso_now(), "large": False,
                "unavailable": False, "member_count": len(members), "voice_states": [],
                "members": members, "presences": [], "stage_instances": [],
                "guild_scheduled_events": [], "soundboard_sounds": [],
                "channels": [c.payload() for c in guild.channels.values() if not c.is_thread],
                "threads": [c.payload() for c in self.active_threads(guild)]}

    # ----------------------------------------------------------------- messages

    def make_message(self, channel: st.Channel, author: st.User, body: dict[str, Any], *,
                     flags: int = 0, attachments: list[dict[str, Any]] | None = None,
                     interaction: st.Interaction | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "id": str(self.ids()), "channel_id": str(channel.id), "author": author.payload(),
            "content": body.get("content") or "", "timestamp": st.iso_now(),
            "edited_timestamp": None, "tts": bool(body.get("tts")), "mention_everyone": False,
            "mentions": [], "mention_roles": [], "attachments": attachments or [],
            "embeds": body.get("embeds") or [], "pinned": False, "type": 0, "flags": flags,
            "components": body.get("components") or []}
        if channel.guild_id:
            msg["guild_id"] = str(channel.guild_id)
        ref = body.get("message_reference")
        if ref:
            target = self.find_message(int(ref["message_id"]))
            if target is None:
                raise DiscordError(400, 50035, "Invalid Form Body: message_reference: Unknown message")
            msg["type"] = 19
            msg["message_reference"] = {"message_id": target["id"], "channel_id": target["channel_id"],
                                        "guild_id": msg.get("guild_id"), "type": 0}
            msg["referenced_message"] = self.public(target)
        if interaction is not None:
            msg["type"] = 20 if interaction.type == 2 else 0
            msg["interaction_metadata"] = {"id": str(interaction.id), "type": interaction.type,
                                           "user": interaction.user.payload(),
                                           "authorizing_integration_owners": {}}
            msg["_for"] = interaction.user.id
        if flags & st.EPHEMERAL and interaction is not None:
            msg["_only"] = interaction.user.id
        channel.messages.append(msg)
        self.observe("new", msg)
        return msg

    def observe(self, kind: str, message: dict[str, Any]) -> None:
        for observer in self.observers:
            observer(kind, message)

    @staticmethod
    def public(message: dict[str, Any]) -> dict[str, Any]:
        """A message as Discord sends it (without the loopback's own bookkeeping keys)."""
        return {k: v for k, v in message.items() if not k.startswith("_")}

    def find_message(self, message_id: int) -> dict[str, Any] | None:
        for channel in self.channels.values():
            for m in channel.messages:
                if int(m["id"]) == message_id:
                    return m
        return None

    def visible(self, channel: st.Channel, user: st.User | None = None) -> list[dict[str, Any]]:
        """The messages ``user`` sees in ``channel`` (everyone's: ``user`` None)."""
        return [m for m in channel.messages if "_only" not in m or (user and m["_only"] == user.id)]

    # ----------------------------------------------------------------- refusals

    def refuse(self, status: int, code: int, route: str, message: str) -> Refusal:
        refusal = Refusal(status, code, route, message)
        self.errors.append(refusal)
        return refusal

    def take(self, code: int) -> Refusal:
        """Mark one refusal with ``code`` as expected by the test; fails when there is none."""
        for r in self.errors:
            if r.code == code and not r.expected:
                r.expected = True
                return r
        raise AssertionError(f"Discord never refused anything with code {code}: {self.errors}")

    @property
    def unexpected_errors(self) -> list[Refusal]:
        return [r for r in self.errors if not r.expected]

    def rate_limit(self, method: str, path_pattern: str, retry_after: float = 0.2) -> None:
        """Answer the next ``method`` request whose path matches with a 429."""
        self.rate_limits.append((method, path_pattern, retry_after))

    # ----------------------------------------------------------------- what moderators do

    async def archive(self, thread: st.Channel) -> None:
        """A moderator archives ``thread`` (THREAD_UPDATE: discord.py drops it from its cache)."""
        thread.archived = True
        await self.gateway.dispatch("THREAD_UPDATE", thread.payload(), guild_id=thread.guild_id)
