"""The items people haggle over, for /haggle and /daily: scenario sets read once, in the
background, and the ``item`` autocomplete that never waits past Discord's 3 s for them.

A set is read in a worker thread (a dataset file can be large, or need a download); the Games
cog starts reading its set when it loads, so the first autocomplete finds it ready. If it is
still loading, autocomplete waits at most ``AUTOCOMPLETE_WAIT_S`` and then offers the random
item alone.
"""

from __future__ import annotations

import asyncio
from typing import Any

from discord import app_commands

from bot.discord_util import CHOICE_NAME_LIMIT, MAX_CHOICES, clip
from bot.negotiation.prompts import money
from bot.negotiation.scenario import Scenario

# How long the first item autocomplete waits for the items still loading (Discord allows 3 s).
AUTOCOMPLETE_WAIT_S = 2.0


class ScenarioSets:
    """Scenario sets by name, each read once."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.loaded: dict[str, list[Scenario]] = {}
        self._loading: dict[str, asyncio.Future[list[Scenario]]] = {}

    def start(self, name: str) -> asyncio.Future[list[Scenario]]:
        """The (running or finished) read of set ``name``."""
        task = self._loading.get(name)
        if task is None:
            from bot.scenarios import load_scenario_set

            task = asyncio.ensure_future(asyncio.to_thread(load_scenario_set, self.cfg, name))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # raised on use
            self._loading[name] = task
        return task

    async def get(self, name: str) -> list[Scenario]:
        if name not in self.loaded:
            try:
                self.loaded[name] = await asyncio.shield(self.start(name))
            except Exception:
                self._loading.pop(name, None)  # the next use tries again
                raise
        return self.loaded[name]

    def cancel(self) -> None:
        for task in self._loading.values():
            task.cancel()

    async def item_choices(self, name: str, current: str) -> list[app_commands.Choice[str]]:
        """What the ``item`` option suggests for ``current``: matching titles (or ids)."""
        if name not in self.loaded:  # still loading: never miss autocomplete's 3 s
            try:
                await asyncio.wait_for(asyncio.shield(self.start(name)), AUTOCOMPLETE_WAIT_S)
            except TimeoutError:
                return [app_commands.Choice(name="random item (the item list is still loading)",
                                            value="random")]
        needle = current.lower().strip()
        choices = [app_commands.Choice(name="random item", value="random")] if not needle else []
        for s in await self.get(name):
            label = f"{s.title} ({money(s.listing_price)})"
            if needle in label.lower() or needle == s.id.lower():
                choices.append(app_commands.Choice(name=clip(label, CHOICE_NAME_LIMIT), value=s.id))
            if len(choices) >= MAX_CHOICES:
                break
        return choices
