"""The loopback Discord's REST routes (API v10): the ones the bot uses, with Discord's rules.

One catch-all aiohttp handler reads the body (JSON, or multipart with ``payload_json`` and
``files[n]``), checks it against the OpenAPI description, finds the route and answers the way
Discord does: JSON with ``Content-Type: application/json`` exactly (discord.py only decodes that
exact value), errors as ``{"message", "code"}`` with Discord's status and code, and 204 where
Discord answers nothing. A route this loopback does not know is refused (404) and recorded, so a
new call the bot makes is noticed, never answered with something made up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.loopback_discord import state as st
from tests.loopback_discord.server import DiscordError, LoopbackDiscord
from tests.loopback_discord.spec import is_empty_message, message_problems

Handler = Callable[..., Awaitable[Any]]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []
NO_CONTENT = object()


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")

    def register(fn: Handler) -> Handler:
        ROUTES.append((method, regex, fn))
        return fn

    return register


def reply(status: int, payload: Any) -> web.Response:
    if payload is NO_CONTENT:
        return web.Response(status=204)
    return web.Response(status=status, body=json.dumps(payload).encode(),
                        headers={"Content-Type": "application/json"})


async def read_body(request: web.Request) -> tuple[Any, list[dict[str, Any]]]:
    files: list[dict[str, Any]] = []
    if not request.can_read_body:
        return None, files
    if request.content_type.startswith("multipart/"):
        body = None
        reader = await request.multipart()
        async for part in reader:
            if part.name == "payload_json":
                body = json.loads(await part.text())
            else:
                files.append({"name": part.name, "filename": part.filename,
                              "data": bytes(await part.read())})
        return body, files
    raw = await request.read()
    return (json.loads(raw) if raw else None), files


def add_routes(app: web.Application, d: LoopbackDiscord) -> None:
    async def handle(request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        method = request.method
        body, files = await read_body(request)
        d.requests.append((method, path))
        if d.validator is not None:
            d.schema_problems.extend(d.validator.check(method, path, body))
        for i, (m, pattern, retry_after) in enumerate(d.rate_limits):
            if m == method and re.search(pattern, path):
                # discord.py treats a 429 as a rate limit only with a Via header (Discord's
                # edge) and a JSON body with retry_after; it waits that long and retries.
                del d.rate_limits[i]
                d.rate_limited.append(f"{method} {path}")
                await d.notify()
                return web.Response(status=429, body=json.dumps(
                    {"message": "You are being rate limited.", "retry_after": retry_after,
                     "global": False}).encode(), headers={
                    "Content-Type": "application/json", "Via": "1.1 google",
                    "X-RateLimit-Scope": "user", "Retry-After": str(retry_after)})
        try:
            if not path.startswith(("/webhooks/", "/interactions/")) and \
                    request.headers.get("Authorization") != f"Bot {d.token}":
                raise DiscordError(401, 0, "401: Unauthorized")
            for m, regex, fn in ROUTES:
                match = regex.match(path)
                if m == method and match:
                    result = await fn(d, body=body, files=files, query=request.query,
                                      **match.groupdict())
                    return reply(200, result)
            raise DiscordError(404, 0, f"404: Not Found (the loopback has no {method} {path})")
        except DiscordError as exc:
            d.refuse(exc.status, exc.code, f"{method} {path}", exc.message)
            return reply(exc.status, {"message": exc.message, "code": exc.code})
        finally:
            await d.notify()

    app.router.add_route("*", "/api/v10/{tail:.*}", handle)


# --------------------------------------------------------------------------- helpers


def channel_or_404(d: LoopbackDiscord, channel_id: str) -> st.Channel:
    channel = d.channels.get(int(channel_id))
    if channel is None:
        raise DiscordError(404, 10003, "Unknown Channel")
    return channel


def need(d: LoopbackDiscord, channel: st.Channel, *names: str) -> None:
    guild = d.guild_of(channel)
    if guild is None:
        return
    held = guild.permissions(d.bot_user.id, channel)
    if not held & st.PERMISSIONS["view_channel"]:
        raise DiscordError(403, 50001, "Missing Access")
    missing = [n for n in names if not held & st.PERMISSIONS[n]]
    if missing:
        raise DiscordError(403, 50013, f"Missing Permissions ({', '.join(missing)})")


def check_message(body: dict[str, Any], files: list[dict[str, Any]]) -> None:
    if is_empty_message(body, files=len(files)):
        raise DiscordError(400, 50006, "Cannot send an empty message")
    problems = message_problems(body, files=len(files))
    if problems:
        raise DiscordError(400, 50035, "Invalid Form Body: " + "; ".join(problems))


def attachments(d: LoopbackDiscord, channel: st.Channel,
                files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for f in files:
        aid = d.ids()
        out.append({"id": str(aid), "filename": f["filename"], "size": len(f["data"]),
                    "url": f"{d.api_base}/attachments/{channel.id}/{aid}/{f['filename']}",
                    "proxy_url": f"{d.api_base}/attachments/{aid}", "data": f["data"]})
    for a in out:
        d.files[a["id"]] = a.pop("data")
    return out


async def post_message(d: LoopbackDiscord, channel: st.Channel, body: dict[str, Any],
                       files: list[dict[str, Any]], *, flags: int = 0,
                       interaction: st.Interaction | None = None) -> dict[str, Any]:
    check_message(body, files)
    msg = d.make_message(channel, d.bot_user, body, flags=flags,
                         attachments=attachments(d, channel, files), interaction=interaction)
    if channel.is_thread and channel.archived and not channel.locked:
        channel.archived = False  # a message unarchives a thread
        await d.gateway.dispatch("THREAD_UPDATE", channel.payload(), guild_id=channel.guild_id)
    if not flags & st.EPHEMERAL:
        await d.gateway.dispatch("MESSAGE_CREATE", d.public(msg), guild_id=channel.guild_id)
    return msg


async def edit_message(d: LoopbackDiscord, msg: dict[str, Any], body: dict[str, Any],
                       files: list[dict[str, Any]]) -> dict[str, Any]:
    changes = {k: body[k] for k in ("content", "embeds", "components") if k in body}
    merged = {**msg, **{k: v for k, v in changes.items() if v is not None}}
    check_message(merged, files)
    msg.update(changes)
    for k in ("content",):
        msg[k] = msg.get(k) or ""
    msg["embeds"] = msg.get("embeds") or []
    msg["components"] = msg.get("components") or []
    if files:
        msg["attachments"] = attachments(d, d.channels[int(msg["channel_id"])], files)
    msg["flags"] = msg.get("flags", 0) & ~st.LOADING
    msg["edited_timestamp"] = st.iso_now()
    d.observe("edit", msg)
    if "_only" not in msg:
        channel = d.channels[int(msg["channel_id"])]
        await d.gateway.dispatch("MESSAGE_UPDATE", d.public(msg), guild_id=channel.guild_id)
    return msg


# --------------------------------------------------------------------------- login, gateway, app


@route("GET", "/users/@me")
async def me(d: LoopbackDiscord, **_: Any) -> Any:
    return {**d.bot_user.payload(), "verified": True, "mfa_enabled": False, "locale": "en-US"}


@route("GET", "/gateway")
async def gateway(d: LoopbackDiscord, **_: Any) -> Any:
    return {"url": d.gateway_url}


@route("GET", "/gateway/bot")
async def gateway_bot(d: LoopbackDiscord, **_: Any) -> Any:
    return {"url": d.gateway_url, "shards": d.recommended_shards,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0,
                                    "max_concurrency": 1}}


@route("GET", "/oauth2/applications/@me")
async def application(d: LoopbackDiscord, **_: Any) -> Any:
    return {"id": str(d.application_id), "name": "haggle", "icon": None, "description": "",
            "bot_public": True, "bot_require_code_grant": False, "verify_key": "0" * 64,
            "owner": (d.owner or d.bot_user).payload(),
            "team": None, "flags": 0, "summary": "", "rpc_origins": []}


def _commands_for(d: LoopbackDiscord, guild_id: str | None) -> list[dict[str, Any]]:
    return d.guild_commands.setdefault(int(guild_id), []) if guild_id else d.global_commands


@route("PUT", "/applications/{app}/commands")
@route("PUT", "/applications/{app}/guilds/{guild_id}/commands")
async def put_commands(d: LoopbackDiscord, body: Any, app: str, guild_id: str | None = None,
                       **_: Any) -> Any:
    if int(app) != d.application_id:
        raise DiscordError(403, 50001, "Missing Access")
    if guild_id and int(guild_id) not in d.guilds:
        raise DiscordError(404, 10004, "Unknown Guild")
    names = [c["name"] for c in body]
    if len(set(names)) != len(names):
        raise DiscordError(400, 50035, "Invalid Form Body: duplicate command names")
    out = []
    for c in body:
        out.append({**c, "id": str(d.ids()), "application_id": app, "version": str(d.ids()),
                    "type": c.get("type", 1), "default_member_permissions":
                        c.get("default_member_permissions"), "nsfw": c.get("nsfw", False),
                    "description": c.get("description", ""),
                    **({"guild_id": guild_id} if guild_id else {})})
    target = _commands_for(d, guild_id)
    target[:] = out
    return out


@route("GET", "/applications/{app}/commands")
@route("GET", "/applications/{app}/guilds/{guild_id}/commands")
async def get_commands(d: LoopbackDiscord, guild_id: str | None = None, **_: Any) -> Any:
    return _commands_for(d, guild_id)


# --------------------------------------------------------------------------- interactions


def interaction_by_token(d: LoopbackDiscord, app: str, token: str) -> st.Interaction:
    ix = next((i for i in d.interactions.values() if i.token == token), None)
    if ix is None or int(app) != d.application_id:
        raise DiscordError(404, 10015, "Unknown Webhook")
    if d.now() - ix.created > 15 * 60:
        ix.errors.append(50027)
        raise DiscordError(401, 50027, "Invalid Webhook Token")
    return ix


@route("POST", "/interactions/{interaction_id}/{token}/callback")
async def callback(d: LoopbackDiscord, body: Any, interaction_id: str, token: str,
                   **_: Any) -> Any:
    ix = d.interactions.get(int(interaction_id))
    if ix is None or ix.token != token:
        raise DiscordError(404, 10062, "Unknown interaction")
    if d.now() - ix.created > d.response_deadline_s:
        ix.errors.append(10062)
        raise DiscordError(404, 10062, "Unknown interaction")
    if ix.acknowledged:
        ix.errors.append(40060)
        raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
    kind, data = body["type"], body.get("data") or {}
    flags = int(data.get("flags") or 0)
    message = None
    if kind == 8:
        choices = data.get("choices") or []
        if ix.type != 4:
            raise DiscordError(400, 50035, "Invalid Form Body: autocomplete answer to a non-autocomplete")
        if len(choices) > 25:
            ix.errors.append(50035)
            raise DiscordError(400, 50035, f"Invalid Form Body: {len(choices)} choices (max 25)")
        if any(len(c.get("name", "")) > 100 or not c.get("name") for c in choices):
            raise DiscordError(400, 50035, "Invalid Form Body: a choice name of 1-100 characters")
        ix.choices = choices
    elif ix.type == 4:
        raise DiscordError(400, 50035, "Invalid Form Body: autocomplete takes choices only")
    elif kind == 4:
        message = await post_message(d, ix.channel, data, [], flags=flags & st.EPHEMERAL,
                                     interaction=ix)
    elif kind == 5:
        message = d.make_message(ix.channel, d.bot_user, {}, interaction=ix,
                                 flags=st.LOADING | (flags & st.EPHEMERAL))
    elif kind in (6, 7):
        if ix.type != 3:
            raise DiscordError(400, 50035, "Invalid Form Body: update types need a component")
        if kind == 7:
            await edit_message(d, d.find_message(int(ix.message["id"])), data, [])
    elif kind != 9:
        raise DiscordError(400, 50035, f"Invalid Form Body: callback type {kind}")
    ix.response_type = kind
    ix.ephemeral = bool(flags & st.EPHEMERAL)
    ix.original = message
    resource: dict[str, Any] = {"type": kind}
    if message is not None:
        resource["message"] = d.public(message)
    return {"interaction": {"id": str(ix.id), "type": ix.type,
                            "response_message_id": message["id"] if message else None,
                            "response_message_loading": kind == 5,
                            "response_message_ephemeral": ix.ephemeral},
            "resource": resource}


@route("POST", "/webhooks/{app}/{token}")
async def followup(d: LoopbackDiscord, body: Any, files: list[dict[str, Any]], app: str,
                   token: str, query: Any, **_: Any) -> Any:
    ix = interaction_by_token(d, app, token)
    if not ix.acknowledged:
        raise DiscordError(404, 10015, "Unknown Webhook")
    asked = int(body.get("flags") or 0)
    original = ix.original
    if original is not None and original.get("flags", 0) & st.LOADING:
        # Discord's rule: the first follow-up after a deferral replaces the "thinking" message
        # and keeps the deferral's visibility, whatever this follow-up's flags say.
        if asked & st.EPHEMERAL and not original.get("flags", 0) & st.EPHEMERAL:
            d.private_shown_publicly.append({"interaction": ix.id, "content": body.get("content"),
                                             "channel": ix.channel.id})
        msg = await edit_message(d, original, body, files)
        if "_only" not in msg:
            await d.gateway.dispatch("MESSAGE_CREATE", d.public(msg), guild_id=ix.channel.guild_id)
        ix.followups.append(msg)
    else:
        msg = await post_message(d, ix.channel, body, files, flags=asked & st.EPHEMERAL,
                                 interaction=ix)
        ix.followups.append(msg)
    return d.public(msg) if query.get("wait") in ("true", "1", "True") else NO_CONTENT


def _webhook_message(d: LoopbackDiscord, ix: st.Interaction, message_id: str) -> dict[str, Any]:
    if message_id == "@original":
        if ix.original is None:
            raise DiscordError(404, 10008, "Unknown Message")
        return ix.original
    for m in ix.replies:
        if m["id"] == message_id:
            return m
    raise DiscordError(404, 10008, "Unknown Message")


@route("GET", "/webhooks/{app}/{token}/messages/{message_id}")
async def get_webhook_message(d: LoopbackDiscord, app: str, token: str, message_id: str,
                              **_: Any) -> Any:
    ix = interaction_by_token(d, app, token)
    return d.public(_webhook_message(d, ix, message_id))


@route("PATCH", "/webhooks/{app}/{token}/messages/{message_id}")
async def edit_webhook_message(d: LoopbackDiscord, body: Any, files: list[dict[str, Any]],
                               app: str, token: str, message_id: str, **_: Any) -> Any:
    ix = interaction_by_token(d, app, token)
    return d.public(await edit_message(d, _webhook_message(d, ix, message_id), body or {}, files))


@route("DELETE", "/webhooks/{app}/{token}/messages/{message_id}")
async def delete_webhook_message(d: LoopbackDiscord, app: str, token: str, message_id: str,
                                 **_: Any) -> Any:
    ix = interaction_by_token(d, app, token)
    msg = _webhook_message(d, ix, message_id)
    d.channels[int(msg["channel_id"])].messages.remove(msg)
    if msg is ix.original:
        ix.original = None  # later follow-ups are messages of their own, with their own flags
    if msg in ix.followups:
        ix.followups.remove(msg)
    if "_only" not in msg:
        channel = d.channels[int(msg["channel_id"])]
        await d.gateway.dispatch("MESSAGE_DELETE", {"id": msg["id"], "channel_id": msg["channel_id"],
                                                    **({"guild_id": str(channel.guild_id)}
                                                       if channel.guild_id else {})},
                                 guild_id=channel.guild_id)
    return NO_CONTENT


# --------------------------------------------------------------------------- channels, messages


@route("POST", "/channels/{channel_id}/messages")
async def create_message(d: LoopbackDiscord, body: Any, files: list[dict[str, Any]],
                         channel_id: str, **_: Any) -> Any:
    channel = channel_or_404(d, channel_id)
    if channel.type in (st.CATEGORY, st.FORUM):
        raise DiscordError(400, 50024, "Cannot execute action on this channel type")
    need(d, channel, "send_messages_in_threads" if channel.is_thread else "send_messages",
         *(["embed_links"] if body.get("embeds") else []), *(["attach_files"] if files else []))
    if channel.is_thread and channel.locked:
        raise DiscordError(400, 50083, "Thread is archived")
    return d.public(await post_message(d, channel, body, files))


def _channel_message(d: LoopbackDiscord, channel_id: str, message_id: str) -> dict[str, Any]:
    channel = channel_or_404(d, channel_id)
    for m in channel.messages:
        if m["id"] == message_id and "_only" not in m:
            return m
    raise DiscordError(404, 10008, "Unknown Message")


@route("GET", "/channels/{channel_id}/messages")
async def list_messages(d: LoopbackDiscord, channel_id: str, query: Any, **_: Any) -> Any:
    """A channel's history as Discord answers it: newest first, ``limit`` 1-100 (default 50),
    ``before`` / ``after`` a message id; private replies are nobody's history."""
    channel = channel_or_404(d, channel_id)
    limit = int(query.get("limit", 50))
    if not 1 <= limit <= 100:
        raise DiscordError(400, 50035, "Invalid Form Body: limit must be in [1, 100]")
    shown = [m for m in channel.messages if "_only" not in m]
    if "before" in query:
        shown = [m for m in shown if int(m["id"]) < int(query["before"])]
    if "after" in query:
        shown = [m for m in shown if int(m["id"]) > int(query["after"])]
    return [d.public(m) for m in reversed(shown)][:limit]


@route("GET", "/channels/{channel_id}/messages/{message_id}")
async def get_message(d: LoopbackDiscord, channel_id: str, message_id: str, **_: Any) -> Any:
    return d.public(_channel_message(d, channel_id, message_id))


@route("PATCH", "/channels/{channel_id}/messages/{message_id}")
async def patch_message(d: LoopbackDiscord, body: Any, files: list[dict[str, Any]],
                        channel_id: str, message_id: str, **_: Any) -> Any:
    msg = _channel_message(d, channel_id, message_id)
    if int(msg["author"]["id"]) != d.bot_user.id:
        raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
    return d.public(await edit_message(d, msg, body or {}, files))


@route("DELETE", "/channels/{channel_id}/messages/{message_id}")
async def delete_message(d: LoopbackDiscord, channel_id: str, message_id: str, **_: Any) -> Any:
    msg = _channel_message(d, channel_id, message_id)
    channel = d.channels[int(channel_id)]
    if int(msg["author"]["id"]) != d.bot_user.id:
        need(d, channel, "manage_messages")
    channel.messages.remove(msg)
    await d.gateway.dispatch("MESSAGE_DELETE", {"id": message_id, "channel_id": channel_id,
                                                **({"guild_id": str(channel.guild_id)}
                                                   if channel.guild_id else {})},
                             guild_id=channel.guild_id)
    return NO_CONTENT


@route("POST", "/channels/{channel_id}/typing")
async def typing(d: LoopbackDiscord, channel_id: str, **_: Any) -> Any:
    channel = channel_or_404(d, channel_id)
    need(d, channel, "send_messages_in_threads" if channel.is_thread else "send_messages")
    return NO_CONTENT


@route("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me")
@route("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me")
async def reaction(d: LoopbackDiscord, channel_id: str, message_id: str, **_: Any) -> Any:
    _channel_message(d, channel_id, message_id)
    need(d, d.channels[int(channel_id)], "add_reactions", "read_message_history")
    return NO_CONTENT


# Which thread types a parent channel takes (Discord: announcement channels 10, text 11/12).
THREAD_TYPES_FOR_PARENT = {st.TEXT: (st.PUBLIC_THREAD, st.PRIVATE_THREAD),
                           st.NEWS: (st.NEWS_THREAD,)}


async def _open_thread(d: LoopbackDiscord, parent: st.Channel, name: str, kind: int,
                       archive: int) -> st.Channel:
    guild = d.guild_of(parent)
    if guild is None:
        raise DiscordError(400, 50024, "Cannot execute action on this channel type")
    need(d, parent, "create_private_threads" if kind == st.PRIVATE_THREAD
         else "create_public_threads")
    if len(d.active_threads(guild)) >= d.active_thread_cap:
        raise DiscordError(400, 160006, "Maximum number of active threads reached")
    thread = d.add_channel(guild, name, kind, parent=parent, owner=d.bot_user)
    thread.auto_archive_duration = archive
    await d.gateway.dispatch("THREAD_CREATE", {**thread.payload(), "newly_created": True},
                             guild_id=guild.id)
    return thread


@route("POST", "/channels/{channel_id}/threads")
async def create_thread(d: LoopbackDiscord, body: Any, files: list[dict[str, Any]],
                        channel_id: str, **_: Any) -> Any:
    parent = channel_or_404(d, channel_id)
    if parent.type == st.FORUM:
        starter = body.get("message")
        if not starter:
            raise DiscordError(400, 50035, "Invalid Form Body: message: a forum post needs one")
        thread = await _open_thread(d, parent, body["name"], st.PUBLIC_THREAD,
                                    body.get("auto_archive_duration", 1440))
        first = await post_message(d, thread, starter, files)
        return {**thread.payload(), "message": d.public(first)}
    allowed = THREAD_TYPES_FOR_PARENT.get(parent.type, ())
    kind = body.get("type", st.PRIVATE_THREAD)
    if kind not in allowed:
        raise DiscordError(400, 50024, "Cannot execute action on this channel type")
    thread = await _open_thread(d, parent, body["name"], kind,
                                body.get("auto_archive_duration", 1440))
    return thread.payload()


@route("POST", "/channels/{channel_id}/messages/{message_id}/threads")
async def thread_from_message(d: LoopbackDiscord, body: Any, channel_id: str, message_id: str,
                              **_: Any) -> Any:
    parent = channel_or_404(d, channel_id)
    _channel_message(d, channel_id, message_id)
    kind = st.NEWS_THREAD if parent.type == st.NEWS else st.PUBLIC_THREAD
    if parent.type not in THREAD_TYPES_FOR_PARENT:
        raise DiscordError(400, 50024, "Cannot execute action on this channel type")
    return (await _open_thread(d, parent, body["name"], kind,
                               body.get("auto_archive_duration", 1440))).payload()


@route("GET", "/channels/{channel_id}")
async def get_channel(d: LoopbackDiscord, channel_id: str, **_: Any) -> Any:
    channel = channel_or_404(d, channel_id)
    need(d, channel)
    return channel.payload()


@route("PATCH", "/channels/{channel_id}")
async def patch_channel(d: LoopbackDiscord, body: Any, channel_id: str, **_: Any) -> Any:
    channel = channel_or_404(d, channel_id)
    if not channel.is_thread:
        need(d, channel, "manage_threads")  # the bot never edits plain channels
    elif channel.owner_id != d.bot_user.id or "locked" in body:
        need(d, channel, "manage_threads")
    if "name" in body:
        channel.name = body["name"]
    if "archived" in body:
        channel.archived = bool(body["archived"])
    if "locked" in body:
        channel.locked = bool(body["locked"])
    if "auto_archive_duration" in body:
        channel.auto_archive_duration = body["auto_archive_duration"]
    event = "THREAD_UPDATE" if channel.is_thread else "CHANNEL_UPDATE"
    await d.gateway.dispatch(event, channel.payload(), guild_id=channel.guild_id)
    return channel.payload()


@route("DELETE", "/channels/{channel_id}")
async def delete_channel(d: LoopbackDiscord, channel_id: str, **_: Any) -> Any:
    channel = channel_or_404(d, channel_id)
    need(d, channel, "manage_threads" if channel.is_thread else "manage_guild")
    payload = channel.payload()
    del d.channels[channel.id]
    guild = d.guild_of(channel)
    if guild is not None:
        guild.channels.pop(channel.id, None)
    await d.gateway.dispatch("THREAD_DELETE" if channel.is_thread else "CHANNEL_DELETE",
                             {k: payload[k] for k in ("id", "guild_id", "parent_id", "type")
                              if k in payload}, guild_id=channel.guild_id)
    return payload


@route("POST", "/users/@me/channels")
async def open_dm(d: LoopbackDiscord, body: Any, **_: Any) -> Any:
    user = d.users.get(int(body["recipient_id"]))
    if user is None:
        raise DiscordError(404, 10013, "Unknown User")
    return d.dm_channel(user).payload()
