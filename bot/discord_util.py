"""Small helpers for talking to Discord within its limits.

- Messages hold at most 2,000 characters and embeds have their own limits: text is split at
  line boundaries (``split_text``) or clipped (``clip``) before it is sent, never rejected by
  Discord mid-game.
- ``LiveMessage`` streams a growing text (a live negotiation) into messages the way llmcord
  streams replies: edits are throttled to at most one API call per interval (Discord rate-limits
  message edits hard), and the text continues in a new message past 2,000 characters.
- ``respond`` answers an interaction whether or not it was already acknowledged (deferred),
  and keeps a private answer private: Discord's first follow-up after a deferral replaces the
  "thinking…" message and keeps the deferral's visibility whatever its own flags say, so after a
  public ``defer`` a private answer first deletes the thinking message (then it is a follow-up
  of its own, shown only to the person).
- ``open_thread`` opens a thread of the type the channel takes (announcement channels take
  announcement threads) and turns Discord's active-thread cap into a clear ``ThreadLimit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import discord

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000
EMBED_DESCRIPTION_LIMIT = 4096
EMBED_FIELD_VALUE_LIMIT = 1024
THREAD_NAME_LIMIT = 100
CHOICE_NAME_LIMIT = 100
MAX_CHOICES = 25

# Mentions, channel links and custom emoji: markup, not words. A mention's 18-digit id must
# never be read as a price.
_MARKUP = re.compile(r"<(?:@[!&]?|#)\d+>|<a?:\w+:\d+>")


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when something was cut."""
    text = text or ""
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


def split_text(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Pieces of at most ``limit`` characters, cut at line breaks, else at spaces, else
    anywhere; no piece is empty, and joining them with newlines gives back the lines."""
    pieces: list[str] = []
    current = ""
    for line in (text or "").split("\n"):
        while len(line) > limit:  # a single line too long for one message
            cut = line.rfind(" ", 0, limit + 1)
            cut = cut if cut > limit // 2 else limit
            head, line = line[:cut], line[cut:].lstrip(" ")
            if current:
                pieces.append(current)
                current = ""
            pieces.append(head)
        if not current:
            current = line
        elif len(current) + 1 + len(line) <= limit:
            current += "\n" + line
        else:
            pieces.append(current)
            current = line
    if current.strip():
        pieces.append(current)
    return [p for p in pieces if p.strip()]


def plain_text(content: str) -> str:
    """A message's words without mentions, channel links or custom emoji."""
    return re.sub(r"\s+", " ", _MARKUP.sub(" ", content or "")).strip()


_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"`<>)]+", re.IGNORECASE)
_PART = r"[^\s'\"`<>:;,()\\/]"
# An absolute path (POSIX, ~/ or a Windows drive), or a relative one ending in a file name.
_PATH = re.compile(rf"(?<![\w.$])(?:[A-Za-z]:[\\/]|~?/)(?:{_PART}+[\\/])*({_PART}+)"
                   rf"|\b[A-Za-z_][\w.-]*[\\/](?:{_PART}+[\\/])*({_PART}*\.[A-Za-z]\w*)\b")


_MENTION = re.compile(r"<(?:@[!&]?|#)\d+>|@(?:everyone|here)\b")


def safe_text(text: str) -> str:
    """Text that is not ours (a display name, a model's words) as it goes into a message or an
    embed: links removed, mentions made inert, markdown escaped (so no masked links, no fake
    bold announcements). Messages also go out with AllowedMentions.none() (bot/app.py)."""
    text = _URL.sub("(link removed)", str(text))
    text = _MENTION.sub(lambda m: m.group(0).replace("@", "@\u200b").replace("#", "#\u200b"),
                        text)
    return discord.utils.escape_markdown(text)


def label_text(text: str) -> str:
    """Text that is not ours where Discord shows no markdown (embed footers, thread names):
    links removed, mentions made inert, line breaks and control characters made spaces; no
    backslashes added (they would show)."""
    text = _URL.sub("(link removed)", str(text))
    text = _MENTION.sub(lambda m: m.group(0).replace("@", "@\u200b").replace("#", "#\u200b"),
                        text)
    text = "".join(" " if c.isspace() or unicodedata.category(c) == "Cc" else c for c in text)
    return re.sub(r" {2,}", " ", text).strip()


def public_error(text: str) -> str:
    """An error text as a person may see it: the one place that sanitises what reaches
    Discord. File and database paths become their file names, URLs a placeholder; the full
    text stays in the bot's log."""
    text = _URL.sub("(a backend URL)", str(text))
    return _PATH.sub(lambda m: f"`{m.group(1) or m.group(2)}`", text)


def ordinal(n: int) -> str:
    """1 -> '1st', 2 -> '2nd', 3 -> '3rd', 11 -> '11th', 22 -> '22nd'."""
    if 10 <= n % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# Interaction.extras key: the visibility of a deferral whose "thinking…" message still stands.
_THINKING = "haggle.thinking_ephemeral"
# Discord's error code when a server has as many active threads as it may (1,000).
MAX_ACTIVE_THREADS_CODE = 160006
THREAD_LIMIT_TEXT = ("This server has reached Discord's limit of active threads, so I can't open "
                     "a new one. Finished games archive their threads; try again later, or ask a "
                     "moderator to archive some old threads.")


class ThreadLimit(Exception):
    """Discord refused a new thread: the server has the most active threads it may have."""

    def __str__(self) -> str:
        return THREAD_LIMIT_TEXT


async def defer(interaction: discord.Interaction, *, ephemeral: bool, thinking: bool = True) -> None:
    """Acknowledge ``interaction`` now (Discord's 3 s deadline), remembering how visible the
    "thinking…" message is, so that ``respond`` can keep private answers private."""
    await interaction.response.defer(ephemeral=ephemeral, thinking=thinking)
    if thinking:
        interaction.extras[_THINKING] = ephemeral


async def respond(interaction: discord.Interaction, content: str | None = None, *,
                  ephemeral: bool = True, **kwargs: Any) -> None:
    """Answer ``interaction``: the first response if none was sent yet, else a follow-up.

    After a public deferral a private answer would be shown to everyone (the first follow-up
    keeps the deferral's visibility), so the thinking message is deleted first.
    """
    if not interaction.response.is_done():
        await interaction.response.send_message(content, ephemeral=ephemeral, **kwargs)
        return
    thinking_private = interaction.extras.pop(_THINKING, None)
    if ephemeral and thinking_private is False:
        await quietly(interaction.delete_original_response())
    await interaction.followup.send(content, ephemeral=ephemeral, **kwargs)


THREAD_TYPE_FOR_HOST = {discord.ChannelType.text: discord.ChannelType.public_thread,
                        discord.ChannelType.news: discord.ChannelType.news_thread}
THREAD_CHANNEL_TYPES = (discord.ChannelType.public_thread, discord.ChannelType.private_thread,
                        discord.ChannelType.news_thread)


def thread_host(channel: Any) -> Any:
    """The channel a new thread for ``channel`` goes in: itself when it is a text or an
    announcement channel, its parent when it is a thread of one; None elsewhere (forum posts,
    voice channels' chats, DMs)."""
    if channel is None:
        return None
    if channel.type in THREAD_CHANNEL_TYPES:
        channel = channel.parent
    if channel is None or channel.type not in THREAD_TYPE_FOR_HOST:
        return None
    return channel


async def open_thread(host: Any, *, name: str, reason: str,
                      auto_archive_duration: int = 1440) -> Any:
    """A public thread in ``host`` of the type it takes; ``ThreadLimit`` at the server's cap."""
    try:
        return await host.create_thread(name=clip(name, 100), type=THREAD_TYPE_FOR_HOST[host.type],
                                        auto_archive_duration=auto_archive_duration,
                                        reason=reason)
    except discord.HTTPException as exc:
        if exc.code == MAX_ACTIVE_THREADS_CODE:
            raise ThreadLimit() from exc
        raise


async def quietly(awaitable: Awaitable[Any]) -> Any:
    """Await a Discord call whose failure changes nothing (a notice, a clean-up): a failure is
    logged and gives None."""
    try:
        return await awaitable
    except discord.HTTPException as exc:
        log.info("ignored Discord error: %s", exc)
        return None


@contextlib.asynccontextmanager
async def typing(channel: Any) -> AsyncIterator[None]:
    """Show "haggle is typing…" while the body runs; a channel that refuses it (missing
    permission, deleted) just shows nothing."""
    indicator = None
    try:
        indicator = channel.typing()
        await indicator.__aenter__()
    except (discord.HTTPException, AttributeError):
        indicator = None
    try:
        yield
    finally:
        if indicator is not None:
            with contextlib.suppress(discord.HTTPException):
                await indicator.__aexit__(None, None, None)


class LiveMessage:
    """Text that grows line by line in a channel, as few API calls as Discord allows.

    ``append`` is instant; a writer task brings the channel up to date, spacing its sends and
    edits at least ``interval`` seconds apart, so a burst of lines becomes one edit. Past
    ``limit`` characters the text continues in a new message. ``close`` flushes what is left.
    If the channel goes away (deleted, permission removed) the stream stops quietly: the
    work that feeds it goes on.
    """

    def __init__(self, channel: Any, *, interval: float = 1.0, limit: int = MESSAGE_LIMIT) -> None:
        self.channel = channel
        self.interval = interval
        self.limit = limit
        self.messages: list[Any] = []
        self.failed = False
        self._pages: list[str] = []
        self._shown: list[str] = []
        self._dirty = asyncio.Event()
        self._closing = False
        self._last_call: float | None = None
        self._errors = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def text(self) -> str:
        return "\n".join(self._pages)

    def append(self, line: str) -> None:
        for piece in split_text(line, self.limit) or [""]:
            if self._pages and len(self._pages[-1]) + 1 + len(piece) <= self.limit:
                self._pages[-1] += "\n" + piece
            else:
                self._pages.append(piece or "\u200b")
        self._dirty.set()
        if self._task is None and not self.failed:
            self._task = asyncio.create_task(self._write(), name="live-message")

    async def close(self) -> None:
        """Wait until every appended line is on Discord (or the channel failed)."""
        self._closing = True
        self._dirty.set()
        if self._task is not None:
            await self._task

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        if self._last_call is not None:
            wait = self._last_call + self.interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        self._last_call = loop.time()

    async def _write(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._sync()
            except discord.HTTPException as exc:  # gone, forbidden, or failing again and again
                log.warning("live message in channel %s stopped: %s",
                            getattr(self.channel, "id", "?"), exc)
                self.failed = True
                return
            if self._closing and not self._dirty.is_set():
                return

    async def _sync(self) -> None:
        for i, page in enumerate(list(self._pages)):
            if i < len(self._shown) and self._shown[i] == page:
                continue
            await self._pace()
            page = self._pages[i]  # lines may have arrived while we waited: send the newest
            try:
                if i < len(self.messages):
                    await self.messages[i].edit(content=page)
                    self._shown[i] = page
                else:
                    self.messages.append(await self.channel.send(page))
                    self._shown.append(page)
            except (discord.NotFound, discord.Forbidden):
                raise
            except discord.HTTPException as exc:  # a hiccup: retry a few times, then give up
                self._errors += 1
                if self._errors >= 3:
                    raise
                log.warning("live message update failed (will retry): %s", exc)
                self._dirty.set()
                return
