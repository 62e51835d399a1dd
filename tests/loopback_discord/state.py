"""The loopback Discord's world: users, servers, roles, channels, threads, messages, commands.

Everything is plain data that the HTTP routes and the gateway turn into Discord's JSON payloads
(API v10). Permissions follow Discord's model closely enough for the bot's checks: a member's
server permissions are the OR of their roles' (``@everyone`` is the role whose id is the
server's), ADMINISTRATOR grants everything, and a channel can deny bits to one member
(threads inherit their parent's).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Discord's epoch (2015-01-01) in ms: snowflakes carry their creation time.
DISCORD_EPOCH_MS = 1_420_070_400_000
ALL_PERMISSIONS = (1 << 51) - 1
ADMINISTRATOR = 1 << 3

PERMISSIONS = {
    "view_channel": 1 << 10, "send_messages": 1 << 11, "embed_links": 1 << 14,
    "attach_files": 1 << 15, "read_message_history": 1 << 16, "manage_messages": 1 << 13,
    "manage_threads": 1 << 34, "create_public_threads": 1 << 35,
    "create_private_threads": 1 << 36, "send_messages_in_threads": 1 << 38,
    "manage_guild": 1 << 5, "add_reactions": 1 << 6,
}

# Channel types (Discord's numbers)
TEXT, DM, VOICE, CATEGORY, NEWS, NEWS_THREAD, PUBLIC_THREAD, PRIVATE_THREAD, FORUM = (
    0, 1, 2, 4, 5, 10, 11, 12, 15)
THREAD_TYPES = (NEWS_THREAD, PUBLIC_THREAD, PRIVATE_THREAD)
EPHEMERAL = 1 << 6
LOADING = 1 << 7


class Snowflakes:
    """Increasing ids that encode the time they were made, as Discord's do."""

    def __init__(self) -> None:
        self._seq = itertools.count(1)

    def __call__(self) -> int:
        ms = int(datetime.now(UTC).timestamp() * 1000) - DISCORD_EPOCH_MS
        return (ms << 22) | (next(self._seq) & 0x3FFFFF)


def iso_now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class User:
    id: int
    name: str
    bot: bool = False

    def payload(self) -> dict[str, Any]:
        return {"id": str(self.id), "username": self.name, "global_name": None if self.bot else self.name,
                "discriminator": "0", "avatar": None, "bot": self.bot, "public_flags": 0, "flags": 0}


@dataclass
class Role:
    id: int
    name: str
    permissions: int
    position: int = 0

    def payload(self) -> dict[str, Any]:
        return {"id": str(self.id), "name": self.name, "permissions": str(self.permissions),
                "position": self.position, "color": 0, "hoist": False, "managed": False,
                "mentionable": False, "flags": 0}


@dataclass
class Channel:
    id: int
    type: int
    name: str
    guild_id: int | None
    parent_id: int | None = None
    owner_id: int | None = None        # a thread's creator
    archived: bool = False
    locked: bool = False
    auto_archive_duration: int = 1440
    deny: dict[int, int] = field(default_factory=dict)  # user id -> permission bits denied
    recipient: User | None = None      # DM channels
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": str(self.id), "type": self.type, "name": self.name,
                               "flags": 0, "last_message_id": None}
        if self.guild_id is not None:
            out["guild_id"] = str(self.guild_id)
        if self.type == DM and self.recipient is not None:
            out["recipients"] = [self.recipient.payload()]
            out.pop("name")
            return out
        if self.parent_id is not None:
            out["parent_id"] = str(self.parent_id)
        if self.is_thread:
            out.update(owner_id=str(self.owner_id), rate_limit_per_user=0, message_count=len(self.messages),
                       member_count=1, total_message_sent=len(self.messages),
                       thread_metadata={"archived": self.archived, "locked": self.locked,
                                        "auto_archive_duration": self.auto_archive_duration,
                                        "archive_timestamp": iso_now(), "create_timestamp": iso_now(),
                                        "invitable": True})
        else:
            out.update(position=0, permission_overwrites=[], nsfw=False, topic=None,
                       rate_limit_per_user=0)
            if self.type == VOICE:
                out.update(bitrate=64000, user_limit=0, rtc_region=None, video_quality_mode=1)
            if self.type == FORUM:
                out.update(available_tags=[], default_reaction_emoji=None, default_sort_order=None,
                           default_forum_layout=0)
        return out


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    roles: dict[int, Role] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    members: dict[int, list[int]] = field(default_factory=dict)  # user id -> role ids
    unavailable: bool = False

    def permissions(self, user_id: int, channel: Channel | None = None) -> int:
        """What ``user_id`` may do here (in ``channel`` when given)."""
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        bits = self.roles[self.id].permissions
        for role_id in self.members.get(user_id, []):
            bits |= self.roles[role_id].permissions
        if bits & ADMINISTRATOR:
            return ALL_PERMISSIONS
        while channel is not None:
            bits &= ~channel.deny.get(user_id, 0)
            channel = self.channels.get(channel.parent_id) if channel.parent_id else None
        return bits

    def member_payload(self, user: User) -> dict[str, Any]:
        return {"user": user.payload(), "roles": [str(r) for r in self.members.get(user.id, [])],
                "joined_at": iso_now(), "deaf": False, "mute": False, "flags": 0, "nick": None,
                "avatar": None, "pending": False, "premium_since": None,
                "communication_disabled_until": None}


@dataclass
class Interaction:
    """One interaction the loopback sent to the bot, and how the bot answered it."""

    id: int
    token: str
    type: int                          # 2 command, 3 component, 4 autocomplete
    user: User
    channel: Channel
    guild: Guild | None
    data: dict[str, Any]
    created: float                     # on the loopback's clock
    message: dict[str, Any] | None = None   # the message a component is on
    response_type: int | None = None   # the initial response's callback type
    ephemeral: bool = False            # the initial response's visibility
    original: dict[str, Any] | None = None  # the message of the initial response
    followups: list[dict[str, Any]] = field(default_factory=list)
    choices: list[dict[str, Any]] | None = None  # autocomplete's answer
    errors: list[int] = field(default_factory=list)  # Discord error codes the bot got for it

    @property
    def acknowledged(self) -> bool:
        return self.response_type is not None

    @property
    def replies(self) -> list[dict[str, Any]]:
        """Every message the bot showed for this interaction: the original, then follow-ups."""
        out = [self.original] if self.original is not None else []
        return out + [m for m in self.followups if m is not self.original]

    @property
    def texts(self) -> list[str]:
        return [m.get("content") or "" for m in self.replies]

    @property
    def answered(self) -> bool:
        """The person sees an answer: a message that is no longer "thinking…", an updated
        message, or autocomplete choices."""
        if self.choices is not None or self.response_type in (6, 7):
            return True
        return any(not (m.get("flags", 0) & LOADING) for m in self.replies)

    def visible_to_others(self, message: dict[str, Any]) -> bool:
        return not message.get("flags", 0) & EPHEMERAL
