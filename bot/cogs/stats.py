"""/leaderboard and /stats: how people and agents do.

People are ranked by the share of the bargaining zone they kept in their deals (their surplus
share, 0% = the bot's secret limit, 100% = their own), then by number of deals. Agents come
from the tournament leaderboard (bot.report: Bradley-Terry ratings over deals), over the
tournaments run in this server or over every tournament in the database.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import checks
from bot.cogs._cards import INFO_COLOUR, own_share, pct
from bot.discord_util import EMBED_DESCRIPTION_LIMIT, clip, defer, respond, safe_text
from bot.negotiation.prompts import money

if TYPE_CHECKING:
    from bot.app import HaggleBot

log = logging.getLogger(__name__)

TOP = 10
SCOPES = [app_commands.Choice(name="this server", value="server"),
          app_commands.Choice(name="everywhere", value="global")]


class Stats(commands.Cog):
    """Leaderboards and personal stats."""

    def __init__(self, bot: HaggleBot) -> None:
        self.bot = bot

    @app_commands.command(name="leaderboard", description="Who haggles best: people or bot agents")
    @app_commands.describe(board="People (by surplus kept) or agents (tournament ratings)",
                           scope="This server or everywhere")
    @app_commands.choices(board=[app_commands.Choice(name="people", value="people"),
                                 app_commands.Choice(name="agents", value="agents")],
                          scope=SCOPES)
    @checks.per_person_cooldown("command_cooldown_s")
    async def leaderboard(self, interaction: discord.Interaction, board: str = "people",
                          scope: str = "server") -> None:
        await defer(interaction, ephemeral=False)
        guild_id = interaction.guild_id if scope == "server" else None
        if scope == "server" and guild_id is None:
            scope = "global"  # a DM has no server: show everyone's
        where = "this server" if guild_id is not None else "everywhere"
        if board == "agents":
            embed = await self.agents_embed(guild_id, where)
        else:
            embed = await self.people_embed(guild_id, where)
        await respond(interaction, embed=embed, ephemeral=False)

    async def people_embed(self, guild_id: int | None, where: str) -> discord.Embed:
        # Ranked inside SQLite: no game is loaded or parsed on the event loop, however many.
        scores = await self.bot.store.player_standings(guild_id=guild_id, limit=TOP)
        lines = []
        for rank, s in enumerate(scores, 1):
            lines.append(f"**{rank}.** {safe_text(s.name)}: {pct(s.mean_share)} of the zone kept, "
                         f"{s.deals}/{s.games} deals")
        embed = discord.Embed(title=f"Best hagglers, {where}", colour=INFO_COLOUR,
                              description=clip("\n".join(lines) or "No finished games yet: "
                                               "start one with /haggle.", EMBED_DESCRIPTION_LIMIT))
        embed.set_footer(text="Surplus kept: your share of the bargaining zone, averaged over "
                              "your deals (0% = the bot's secret limit).")
        return embed

    async def agents_embed(self, guild_id: int | None, where: str) -> discord.Embed:
        from bot.report import leaderboard

        store = self.bot.store
        ids = await store.guild_tournament_ids(guild_id) if guild_id is not None else None
        negotiations = await store.negotiations(ids) if ids is None or ids else []
        rows = await asyncio.to_thread(leaderboard, negotiations) if negotiations else []
        lines = []
        for r in rows[:TOP]:
            rating = "unrated" if r["rating"] is None else f"{r['rating']:.0f}"
            agreement = r["agreement"]["mean"]
            lines.append(f"**{r['rank']}.** `{r['agent']}`: rating {rating}, "
                         f"{pct(agreement)} deals, {pct(r['surplus_share']['mean'])} surplus "
                         f"({r['negotiations']} negotiations)")
        empty = ("No tournaments yet: a server manager can start one with /tournament run."
                 if guild_id is not None else "No tournaments in the database yet.")
        embed = discord.Embed(title=f"Agent leaderboard, {where}", colour=INFO_COLOUR,
                              description=clip("\n".join(lines) or empty, EMBED_DESCRIPTION_LIMIT))
        embed.set_footer(text="Bradley-Terry rating over deals (1500 = average), agreement rate, "
                              "mean surplus share in the agent's own seat.")
        return embed

    @app_commands.command(name="stats", description="Someone's haggling record (yours by default)")
    @app_commands.describe(member="Whose record (default: yours)", scope="This server or everywhere")
    @app_commands.choices(scope=SCOPES)
    @checks.per_person_cooldown("command_cooldown_s")
    async def stats(self, interaction: discord.Interaction, member: discord.User | None = None,
                    scope: str = "server") -> None:
        await defer(interaction, ephemeral=True)
        who = member or interaction.user
        guild_id = interaction.guild_id if scope == "server" else None
        scores = await self.bot.store.player_standings(guild_id=guild_id, player_id=who.id)
        embed = discord.Embed(title=f"{safe_text(who.display_name)}'s haggling record", colour=INFO_COLOUR)
        if not scores:
            embed.description = "No finished games yet" + (
                ": start one with /haggle." if who.id == interaction.user.id else ".")
            await respond(interaction, embed=embed)
            return
        s = scores[0]
        embed.add_field(name="Games", value=str(s.games))
        embed.add_field(name="Deals", value=f"{s.deals} ({pct(s.deals / s.games)})")
        embed.add_field(name="Surplus kept", value=f"{pct(s.mean_share)} on average, best "
                                                   f"{pct(s.best)}")
        recent = []
        for row in await self.bot.store.finished_games(guild_id=guild_id, player_id=who.id,
                                                       latest=5):
            title = row.scenario.get("title", row.scenario_id)
            result = (f"deal at {money(row.deal_price)} ({pct(own_share(row))})"
                      if row.deal_price is not None else row.outcome.replace("_", " "))
            recent.append(f"{clip(title, 60)} as {row.human_role}: {result}")
        embed.add_field(name="Latest games", value=clip("\n".join(recent), 1024), inline=False)
        await respond(interaction, embed=embed)


async def setup(bot: HaggleBot) -> None:
    await bot.add_cog(Stats(bot))
