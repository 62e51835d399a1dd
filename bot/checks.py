"""Every check the bot's commands use, in one place (RoboDanny's layout).

They are discord.py app-command checks: a failing check raises an ``AppCommandError`` that the
bot's tree turns into a short private reply (``bot.app.HaggleTree.on_error``), so a refused
command never leaves the person without an answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import discord
from discord import app_commands

T = TypeVar("T")

# What the bot needs in a channel to host a game in a thread of it.
GAME_PERMISSIONS = ("view_channel", "send_messages", "create_public_threads",
                    "send_messages_in_threads", "embed_links", "read_message_history")
# What it needs to stream a tournament into a thread and post its chart.
TOURNAMENT_PERMISSIONS = GAME_PERMISSIONS + ("attach_files",)


class NotManager(app_commands.CheckFailure):
    """The person may not run this: it needs Manage Server or the configured manager role."""

    def __init__(self, role: str) -> None:
        super().__init__(f"This needs the **Manage Server** permission or the **{role}** role. "
                         f"Ask a server admin.")


def is_manager(interaction: discord.Interaction) -> bool:
    """Manage Server in this server, the configured manager role, or a configured owner."""
    settings = interaction.client.settings
    user = interaction.user
    if user.id in settings.owner_ids:
        return True
    if interaction.guild is None:
        return False
    if interaction.permissions.manage_guild:
        return True
    return any(role.name == settings.manager_role for role in getattr(user, "roles", ()))


def in_guild() -> Callable[[T], T]:
    """Servers only (the command is also registered as guild-only, so DMs do not list it)."""

    def predicate(interaction: discord.Interaction) -> bool:
        if interaction.guild is None:
            raise app_commands.NoPrivateMessage("This command works in servers, not in DMs.")
        return True

    return app_commands.check(predicate)


def manager_only() -> Callable[[T], T]:
    """Manage Server or the manager role from ``[bot] manager_role``."""

    def predicate(interaction: discord.Interaction) -> bool:
        if interaction.guild is None:
            raise app_commands.NoPrivateMessage("This command works in servers, not in DMs.")
        if not is_manager(interaction):
            raise NotManager(interaction.client.settings.manager_role)
        return True

    return app_commands.check(predicate)


def bot_permissions(*names: str) -> Callable[[T], T]:
    """The bot must hold these permissions in the channel (servers only; DMs pass).

    Unlike ``app_commands.checks.bot_has_permissions`` this one lets direct messages through,
    where a game runs in the DM itself and no thread is needed.
    """

    def predicate(interaction: discord.Interaction) -> bool:
        if interaction.guild is None:
            return True
        held = interaction.app_permissions
        missing = [name for name in names if not getattr(held, name)]
        if missing:
            raise app_commands.BotMissingPermissions(missing)
        return True

    return app_commands.check(predicate)


class RateLimited(app_commands.CheckFailure):
    """The person went past ``[bot] actions_per_minute`` (the message says so)."""


def within_rate_limit(interaction: discord.Interaction) -> str | None:
    """Count one action of the person against the bot-wide ``actions_per_minute``: None when
    allowed, else what to tell them."""
    from bot.ratelimit import slow_down

    limits = getattr(interaction.client, "rate_limits", None)
    if limits is None:
        return None
    wait = limits.hit(interaction.user.id)
    return None if wait is None else slow_down(wait, limits.per_minute)


def per_person_cooldown(setting: str) -> Callable[[T], T]:
    """One use per ``[bot] <setting>`` seconds per person per server (0 turns it off), and
    the person's bot-wide ``actions_per_minute`` (RateLimited, told privately).

    discord.py's dynamic cooldown: the length is read from the running bot's config, the
    bucket key is (server, person), and a refused call raises CommandOnCooldown with the wait.
    """

    def rate(interaction: discord.Interaction) -> bool:
        said = within_rate_limit(interaction)
        if said is not None:
            raise RateLimited(said)
        return True

    def factory(interaction: discord.Interaction) -> app_commands.Cooldown | None:
        seconds = getattr(interaction.client.settings, setting)
        return app_commands.Cooldown(1, seconds) if seconds > 0 else None

    def key(interaction: discord.Interaction) -> Any:
        return (interaction.guild_id, interaction.user.id)

    cooldown = app_commands.checks.dynamic_cooldown(factory, key=key)
    limited = app_commands.check(rate)

    def decorate(func: T) -> T:
        return limited(cooldown(func))

    return decorate


def permission_names(names: list[str]) -> str:
    """['create_public_threads', 'embed_links'] -> 'Create Public Threads, Embed Links'."""
    return ", ".join(n.replace("_", " ").replace("guild", "server").title() for n in names)
