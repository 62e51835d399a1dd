"""/models: the agents people can face and the models behind them; a server's default agent.

Listing reads the config and the live queues only (no model file is opened, nothing is
hashed), so it answers at once. It names model files and their sizes, never a path on the
bot's machine or a backend's URL; the bot's owners see those (the answer is private).
Changing the server's default agent needs Manage Server or the configured manager role.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import checks
from bot.discord_util import CHOICE_NAME_LIMIT, EMBED_FIELD_VALUE_LIMIT, MAX_CHOICES, clip, respond
from bot.llm.models import EMBEDDED, EMBEDDED_FILE
from bot.negotiation.turns import Role

if TYPE_CHECKING:
    from bot.app import HaggleBot


def public_where(spec: Any) -> str:
    """Where a model comes from, as anyone may see it: a file name and size, or the kind of
    backend; never a path on the bot's machine nor a URL."""
    if spec.backend == "openai":
        return f"served by an {spec.backend} backend"
    ref = str(spec.path)
    if ref == EMBEDDED:
        return f"`{EMBEDDED_FILE}` (the embedded model)"
    name = ref.rstrip("/").rsplit("/", 1)[-1]
    try:
        size = f", {Path(ref).stat().st_size / 1e9:.2f} GB"
    except (OSError, ValueError):
        size = ""
    return f"`{clip(name, 100)}`{size}"


def owner_where(spec: Any) -> str:
    return str(spec.path) if spec.backend != "openai" else f"{spec.url} ({spec.backend})"


class Models(commands.Cog):
    """Agents and models."""

    models = app_commands.Group(name="models", description="The bot's agents and models")

    def __init__(self, bot: HaggleBot) -> None:
        self.bot = bot

    @models.command(name="list", description="The agents you can haggle with, and their models")
    @checks.per_person_cooldown("command_cooldown_s")
    async def list_models(self, interaction: discord.Interaction) -> None:
        cfg = self.bot.cfg
        where_of = owner_where if await self.bot.is_owner(interaction.user) else public_where
        default = None
        if interaction.guild_id is not None:
            default = (await self.bot.store.guild_settings(interaction.guild_id)).default_agent
        games = self.bot.get_cog("Games")
        defaults = {role: await games.default_agent(interaction.guild_id, role) for role in Role}
        embed = discord.Embed(title="Agents", colour=discord.Colour.blurple())
        lines = []
        for agent in cfg.agents.values():
            seats = "/".join(agent.roles)
            engine = "rule-based" if agent.kind == "rule" else f"model `{agent.model}`, {agent.policy}"
            marks = [f"default {role.value}" for role, name in defaults.items() if name == agent.name]
            lines.append(f"`{agent.name}`: {seats}, {agent.personality}, {engine}"
                         + (f" (**{', '.join(marks)}**)" if marks else ""))
        embed.description = clip("\n".join(lines) or "No agents configured.", 4000)
        queues = {q.model: q for q in self.bot.queues.states()}
        for name, spec in cfg.models.items():
            used = [a.name for a in cfg.agents.values() if a.kind == "llm" and a.model == name]
            if not used:
                continue
            where = where_of(spec)
            q = queues.get(name)
            load = (f"{q.busy}/{q.slots} busy, {q.waiting} waiting" if q
                    else f"idle, {self.bot.settings.model_slots} slot(s)")
            embed.add_field(name=f"Model {name}", inline=False,
                            value=clip(f"{where}\n{load}", EMBED_FIELD_VALUE_LIMIT))
        if default:
            embed.set_footer(text=f"This server's default agent: {default}")
        await respond(interaction, embed=embed)

    @models.command(name="default", description="Set the agent people face by default here")
    @app_commands.describe(agent="An agent from /models list, or 'reset' for the config's")
    @checks.manager_only()
    async def set_default(self, interaction: discord.Interaction, agent: str) -> None:
        store = self.bot.store
        if agent == "reset":
            await store.set_guild_settings(interaction.guild_id, default_agent=None)
            await respond(interaction, "Done: people face the configured default agents again.",
                          ephemeral=False)
            return
        if agent not in self.bot.cfg.agents:
            known = ", ".join(f"`{a}`" for a in self.bot.cfg.agents)
            await respond(interaction, f"There is no agent called {clip(agent, 80)!r}. "
                                       f"Known agents: {known}.")
            return
        await store.set_guild_settings(interaction.guild_id, default_agent=agent)
        seats = " and ".join(self.bot.cfg.agents[agent].roles)
        await respond(interaction, f"Done: `{agent}` is this server's default agent (it plays "
                                   f"the {seats}; the config's default covers any other seat).",
                      ephemeral=False)

    @set_default.autocomplete("agent")
    async def _agent_choices(self, interaction: discord.Interaction,
                             current: str) -> list[app_commands.Choice[str]]:
        names = ["reset"] + list(self.bot.cfg.agents)
        return [app_commands.Choice(name=clip(n, CHOICE_NAME_LIMIT), value=n)
                for n in names if current.lower() in n.lower()][:MAX_CHOICES]


async def setup(bot: HaggleBot) -> None:
    await bot.add_cog(Models(bot))
