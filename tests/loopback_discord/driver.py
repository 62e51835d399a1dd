"""Driving the loopback Discord as people do: type, invoke slash commands, click, autocomplete.

``Driver`` is the API tests, the watch script and benchmarks share:

    d = await LoopbackDiscord(spec_path=...).start()
    guild = d.add_guild("Test server"); general = d.add_channel(guild, "general")
    alice = d.add_member(guild, d.add_user("alice"))
    drive = Driver(d)
    async with drive.run(bot):                       # the real client logs in, IDENTIFYs, READY
        await drive.sync(bot)                         # tree.sync over HTTP, as `haggle bot --sync`
        ix = await drive.invoke(alice, general, "haggle", role="buyer")
        thread = drive.thread_of(ix)
        await drive.say(alice, thread, "would you take $120?")
        reply = await drive.next_bot_message(thread)
        await drive.click(alice, drive.message_with(thread, "haggle:game:accept"), prefix=...)

Only synced commands can be invoked (``CommandNotSynced`` otherwise), and options are typed
from the command definitions the bot registered, as Discord's client does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections.abc import AsyncIterator
from typing import Any

from tests.loopback_discord import state as st
from tests.loopback_discord.server import LoopbackDiscord

SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10)


class CommandNotSynced(LookupError):
    """Discord's client would not offer this command: it was never synced (or has no such
    option)."""


class Driver:
    def __init__(self, discord: LoopbackDiscord) -> None:
        self.d = discord

    # ----------------------------------------------------------------- the bot's life

    @contextlib.asynccontextmanager
    async def run(self, bot: Any, *, timeout: float = 60.0) -> AsyncIterator[Any]:
        """Start ``bot`` against the loopback (login, gateway, READY), close it afterwards."""
        task = await self.start(bot, timeout=timeout)
        try:
            yield bot
        finally:
            await self.stop(bot, task)

    async def start(self, bot: Any, *, timeout: float = 60.0) -> asyncio.Task[None]:
        self.d.install()
        # A Client option: how long READY waits for more GUILD_CREATEs (default 2 s).
        bot._connection.guild_ready_timeout = 0.2
        task = asyncio.create_task(bot.start(self.d.token), name="loopback-bot")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not bot.is_ready():
            if task.done():
                task.result()  # the start failed: raise its error
                raise RuntimeError("the bot stopped before READY")
            if loop.time() > deadline:
                task.cancel()
                raise TimeoutError("the bot did not become ready")
            await asyncio.sleep(0.02)
        return task

    async def stop(self, bot: Any, task: asyncio.Task[None]) -> None:
        if not bot.is_closed():
            await bot.close()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(task, 10)

    async def sync(self, bot: Any, guild: st.Guild | None = None) -> list[Any]:
        """The owner's sync: the tree's commands registered with Discord over HTTP."""
        import discord

        return await bot.tree.sync(guild=discord.Object(guild.id) if guild else None)

    # ----------------------------------------------------------------- people

    async def say(self, user: st.User, channel: st.Channel, text: str, *,
                  mention_bot: bool = False) -> dict[str, Any]:
        """``user`` types ``text`` in ``channel`` (MESSAGE_CREATE reaches the bot)."""
        d = self.d
        if mention_bot:
            text = f"<@{d.bot_user.id}> {text}"
        msg = d.make_message(channel, user, {"content": text})
        if mention_bot:
            msg["mentions"] = [d.bot_user.payload()]
        payload = d.public(msg)
        guild = d.guild_of(channel)
        if guild is not None:
            payload["member"] = {k: v for k, v in guild.member_payload(user).items() if k != "user"}
        await d.gateway.dispatch("MESSAGE_CREATE", payload, guild_id=channel.guild_id)
        return msg

    def registered(self, guild: st.Guild | None, name: str) -> dict[str, Any]:
        commands = (self.d.guild_commands.get(guild.id, []) if guild else []) + self.d.global_commands
        for command in commands:
            if command["name"] == name:
                return command
        raise CommandNotSynced(f"/{name} is not registered with Discord (sync the commands)")

    def _options(self, definitions: list[dict[str, Any]], values: dict[str, Any],
                 resolved: dict[str, Any], guild: st.Guild | None, focused: str | None) -> list[Any]:
        by_name = {o["name"]: o for o in definitions}
        out = []
        for name, value in values.items():
            spec = by_name.get(name)
            if spec is None:
                raise CommandNotSynced(f"the registered command has no option {name!r}")
            kind = spec["type"]
            if name != focused and spec.get("choices") and \
                    value not in [c["value"] for c in spec["choices"]]:
                raise ValueError(f"{name}={value!r} is not one of the command's choices")
            if kind == USER and name != focused:
                user = value
                value = str(user.id)
                resolved.setdefault("users", {})[value] = user.payload()
                if guild is not None and user.id in guild.members:
                    member = guild.member_payload(user)
                    member.pop("user")
                    member["permissions"] = str(guild.permissions(user.id))
                    resolved.setdefault("members", {})[value] = member
            elif kind in (INTEGER, NUMBER) and name != focused:
                value = int(value) if kind == INTEGER else float(value)
            option = {"name": name, "type": kind, "value": value}
            if name == focused:
                option["focused"] = True
                option["value"] = str(value)
            out.append(option)
        missing = [o["name"] for o in definitions if o.get("required") and o["name"] not in values
                   and focused is None]
        if missing:
            raise ValueError(f"required option(s) missing: {missing}")
        return out

    def _command_data(self, guild: st.Guild | None, command: str, options: dict[str, Any],
                      focused: str | None = None) -> dict[str, Any]:
        name, *path = command.split()
        registered = self.registered(guild, name)
        contexts = registered.get("contexts")
        if guild is None and (registered.get("dm_permission") is False
                              or (contexts is not None and 1 not in contexts)):
            raise CommandNotSynced(f"/{name} is a server-only command: Discord does not offer "
                                   f"it in direct messages")
        resolved: dict[str, Any] = {}
        definitions = registered.get("options") or []
        wrappers: list[dict[str, Any]] = []
        for part in path:
            sub = next((o for o in definitions if o["name"] == part and o["type"] in
                        (SUB_COMMAND, SUB_COMMAND_GROUP)), None)
            if sub is None:
                raise CommandNotSynced(f"/{command}: no subcommand {part!r} is registered")
            wrappers.append({"name": part, "type": sub["type"], "options": []})
            definitions = sub.get("options") or []
        leaf = self._options(definitions, options, resolved, guild, focused)
        if wrappers:
            for outer, inner in itertools.pairwise(wrappers):
                outer["options"] = [inner]
            wrappers[-1]["options"] = leaf
            top = [wrappers[0]]
        else:
            top = leaf
        data = {"id": registered["id"], "name": name, "type": 1, "options": top}
        if resolved:
            data["resolved"] = resolved
        if registered.get("guild_id"):
            data["guild_id"] = registered["guild_id"]
        return data

    def _payload(self, ix: st.Interaction) -> dict[str, Any]:
        d = self.d
        payload: dict[str, Any] = {
            "id": str(ix.id), "application_id": str(d.application_id), "type": ix.type,
            "data": ix.data, "channel": ix.channel.payload(), "channel_id": str(ix.channel.id),
            "token": ix.token, "version": 1, "locale": "en-US", "entitlements": [],
            "authorizing_integration_owners": {"0": str(ix.guild.id) if ix.guild else "0"},
            "attachment_size_limit": 10 * 1024 * 1024}
        if ix.guild is not None:
            member = ix.guild.member_payload(ix.user)
            member["permissions"] = str(ix.guild.permissions(ix.user.id, ix.channel))
            payload.update(guild_id=str(ix.guild.id), member=member, guild_locale="en-US",
                           guild={"id": str(ix.guild.id), "locale": "en-US", "features": []},
                           app_permissions=str(ix.guild.permissions(d.bot_user.id, ix.channel)),
                           context=0)
        else:
            payload.update(user=ix.user.payload(), context=1,
                           app_permissions=str(st.ALL_PERMISSIONS & ~st.ADMINISTRATOR))
        if ix.message is not None:
            payload["message"] = d.public(ix.message)
        return payload

    async def _send(self, user: st.User, channel: st.Channel, kind: int, data: dict[str, Any],
                    message: dict[str, Any] | None = None) -> st.Interaction:
        d = self.d
        ix = st.Interaction(id=d.ids(), token=f"ix.{secrets.token_urlsafe(24)}", type=kind,
                            user=user, channel=channel, guild=d.guild_of(channel), data=data,
                            created=d.now(), message=message)
        d.interactions[ix.id] = ix
        await d.gateway.dispatch("INTERACTION_CREATE", self._payload(ix), guild_id=channel.guild_id)
        return ix

    async def invoke(self, user: st.User, channel: st.Channel, command: str, *,
                     wait: bool = True, timeout: float = 30.0, **options: Any) -> st.Interaction:
        """``user`` runs ``/command`` (e.g. ``"tournament run"``) with ``options`` in
        ``channel``; waits (``wait``) until the person sees an answer."""
        data = self._command_data(self.d.guild_of(channel), command, options)
        ix = await self._send(user, channel, 2, data)
        if wait:
            await self.answered(ix, timeout)
        return ix

    async def autocomplete(self, user: st.User, channel: st.Channel, command: str, focused: str,
                           *, timeout: float = 5.0, **options: Any) -> list[dict[str, Any]]:
        """What Discord's client would list while ``user`` types ``options[focused]``."""
        data = self._command_data(self.d.guild_of(channel), command, options, focused=focused)
        ix = await self._send(user, channel, 4, data)
        await self.d.wait_for(lambda: ix.choices is not None or ix.errors, timeout)
        return ix.choices or []

    async def click(self, user: st.User, message: dict[str, Any], custom_id: str, *,
                    wait: bool = True, timeout: float = 30.0) -> st.Interaction:
        """``user`` presses the button ``custom_id`` on ``message``."""
        channel = self.d.channels[int(message["channel_id"])]
        if "_only" in message and message["_only"] != user.id:
            raise LookupError("that message is not visible to this person")
        if not any(c.get("custom_id") == custom_id for row in message.get("components") or []
                   for c in row.get("components") or []):
            raise LookupError(f"no button {custom_id!r} on that message")
        ix = await self._send(user, channel, 3, {"custom_id": custom_id, "component_type": 2},
                              message=message)
        if wait:
            await self.answered(ix, timeout)
        return ix

    async def answered(self, ix: st.Interaction, timeout: float = 30.0) -> st.Interaction:
        await self.d.wait_for(lambda: ix.answered or ix.errors, timeout)
        return ix

    # ----------------------------------------------------------------- looking at what the bot did

    def bot_messages(self, channel: st.Channel) -> list[dict[str, Any]]:
        return [m for m in channel.messages if int(m["author"]["id"]) == self.d.bot_user.id
                and not m.get("flags", 0) & st.LOADING]

    async def next_bot_message(self, channel: st.Channel, *, after: int | None = None,
                               timeout: float = 30.0) -> dict[str, Any]:
        """The first bot message in ``channel`` beyond the first ``after`` (default: those
        there now)."""
        seen = len(self.bot_messages(channel)) if after is None else after
        await self.d.wait_for(lambda: len(self.bot_messages(channel)) > seen, timeout)
        return self.bot_messages(channel)[seen]

    def threads(self, channel: st.Channel) -> list[st.Channel]:
        return self.d.threads(channel)

    def message_with(self, channel: st.Channel, custom_id_prefix: str) -> dict[str, Any]:
        """The newest message in ``channel`` carrying a button whose custom id starts with the
        prefix."""
        for m in reversed(channel.messages):
            for row in m.get("components") or []:
                for c in row.get("components") or []:
                    if (c.get("custom_id") or "").startswith(custom_id_prefix):
                        return m
        raise LookupError(f"no message with a {custom_id_prefix!r} button")

    @staticmethod
    def button(message: dict[str, Any], prefix: str) -> str:
        for row in message.get("components") or []:
            for c in row.get("components") or []:
                if (c.get("custom_id") or "").startswith(prefix):
                    return c["custom_id"]
        raise LookupError(prefix)


def text_of(message: dict[str, Any]) -> str:
    """A message's words and embed text, as a person reads them."""
    parts = [message.get("content") or ""]
    for e in message.get("embeds") or []:
        parts += [e.get("title") or "", e.get("description") or ""]
        parts += [f"{f.get('name')}: {f.get('value')}" for f in e.get("fields") or []]
        if e.get("footer"):
            parts.append(e["footer"].get("text") or "")
    return "\n".join(p for p in parts if p)
