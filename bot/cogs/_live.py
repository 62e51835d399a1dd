"""The pieces of a running /haggle game around the Games cog (bot/cogs/games.py): the game
held in memory, the stand-in agent it holds between turns, its buttons (dynamic items that keep
working across restarts) and where it is played (a new thread, or the DM itself)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, ClassVar

import discord

from bot.discord_util import (
    THREAD_NAME_LIMIT,
    ThreadLimit,
    clip,
    label_text,
    open_thread,
    respond,
    thread_host,
)
from bot.negotiation.personality import Personality
from bot.negotiation.scenario import Scenario
from bot.negotiation.session import HumanGame
from bot.negotiation.turns import Role


class Unseated:
    """The agent a game holds between turns. It refuses to answer: a real agent is built for
    each turn on the model slot the queue granted, so no model is ever called out of line."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def respond(self, state: Any) -> Any:
        raise RuntimeError(f"agent {self.name!r} was asked to move outside the model queue")


@dataclass
class LiveGame:
    """A running game held in memory (rebuilt from the database when needed)."""

    id: int
    player_id: int
    player_name: str
    guild_id: int | None
    channel_id: int            # where /haggle was used (the DM itself for DM games)
    thread_id: int | None
    agent_name: str
    seed: int
    personality: Personality | None
    daily: str | None
    intro_message_id: int | None
    game: HumanGame
    restarts: list[dict[str, Any]] = field(default_factory=list)  # bot restarts it lived through
    posted: int = 0            # turns posted in Discord (later saved turns are in the outbox)
    card_posted: bool = False  # the result card is posted
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    place: Any = None          # the thread (or DM channel) object, once known
    waiting: asyncio.Task[Any] | None = None  # the task whose turn waits in a model's line
    withdrawn: str | None = None  # that turn was cancelled: "" by the person, else the reason
    unsaved: bool = False      # over in memory, but its final save failed (the sweep retries)

    @property
    def place_id(self) -> int:
        return self.thread_id or self.channel_id

    @property
    def human_role(self) -> Role:
        return self.game.human_role

    def meta(self) -> dict[str, Any]:
        return {"seed": self.seed, "personality": self.personality, "daily": self.daily,
                "intro_message_id": self.intro_message_id, "restarts": self.restarts,
                "posted": self.posted, "card_posted": self.card_posted}

    def state(self) -> dict[str, Any]:
        """What the database keeps: HumanGame's state plus what the bot needs to resume."""
        return {**self.game.to_state(), "bot": self.meta()}


class GameButton(discord.ui.DynamicItem[discord.ui.Button],
                 template=r"haggle:game:(?P<action>accept|walk|status):(?P<game_id>[0-9]+)"):
    """Accept / Walk away / Status under a game's opening card; works across restarts."""

    STYLES: ClassVar[dict[str, tuple[str, discord.ButtonStyle]]] = {
        "accept": ("Accept", discord.ButtonStyle.success),
        "walk": ("Walk away", discord.ButtonStyle.danger),
        "status": ("Status", discord.ButtonStyle.secondary),
    }

    def __init__(self, action: str, game_id: int) -> None:
        label, style = self.STYLES[action]
        super().__init__(discord.ui.Button(label=label, style=style,
                                           custom_id=f"haggle:game:{action}:{game_id}"))
        self.action = action
        self.game_id = game_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item,
                             match: Any, /) -> GameButton:
        return cls(match["action"], int(match["game_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        from bot.checks import within_rate_limit

        limited = within_rate_limit(interaction)  # button mashing counts too
        if limited is not None:
            await respond(interaction, limited, ephemeral=True)
            return
        games = interaction.client.get_cog("Games")
        if games is None:
            await respond(interaction, "Games are paused right now; try again in a minute.")
            return
        try:
            await games.press(interaction, self.game_id, self.action)
        except Exception as exc:  # noqa: BLE001 - discord.py only logs a dynamic item's errors
            await interaction.client.tree.on_error(interaction, exc)


def game_controls(game_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in ("accept", "walk", "status"):
        view.add_item(GameButton(action, game_id))
    return view


async def make_place(interaction: discord.Interaction, scenario: Scenario, user: Any) -> Any:
    """A new public thread for the game, or the DM channel itself; None after telling the
    person why neither works."""
    channel = interaction.channel
    if interaction.guild is None:
        return channel
    host = thread_host(channel)
    if host is None:
        await respond(interaction, "Games run in threads: use /haggle in a text or "
                                   "announcement channel.")
        return None
    name = clip(label_text(f"{user.display_name} haggles: {scenario.title}"), THREAD_NAME_LIMIT)
    try:
        return await open_thread(host, name=name, reason=f"haggle game for {user}")
    except ThreadLimit as exc:
        await respond(interaction, str(exc))
        return None
    except discord.Forbidden:
        await respond(interaction, "I can't open a thread in this channel: give my role "
                                   "**Create Public Threads** and **Send Messages in "
                                   "Threads** here, or use another channel.")
        return None
