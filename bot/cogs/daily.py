"""/daily: everyone in a server haggles for the same item, with the same agent and seed, once a
day; the ranking is posted in the channel where the day's challenge started once the day is
over and its last game has ended.

The day's challenge is fixed by the first person who plays it (stored in the database), so a
restart or a config change during the day never splits the field. The item is a function of
the server and the date (every server gets its own challenge); the bot's private limit and
the agent's seed come from a secret drawn then and stored with the challenge, so no one can
compute them: they are revealed with the final ranking once the day is over.
"""

from __future__ import annotations

import hashlib
import logging
import random
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot import checks
from bot.cogs._cards import INFO_COLOUR, daily_ranking, limit_word, ranking_lines
from bot.discord_util import defer, respond, safe_text
from bot.negotiation.prompts import money
from bot.negotiation.scenario import Scenario, draw_private_limit
from bot.negotiation.turns import Role

if TYPE_CHECKING:
    from bot.app import HaggleBot

log = logging.getLogger(__name__)


def challenge_day(now: datetime, starts_utc_hour: int) -> str:
    """The challenge's date at ``now``: days change at ``starts_utc_hour`` UTC."""
    return (now.astimezone(UTC) - timedelta(hours=starts_utc_hour)).date().isoformat()


def challenge_seed(guild_id: int, day: str) -> int:
    """The same seed for everyone in a server on a day, different across servers and days."""
    digest = hashlib.sha256(f"haggle-daily:{guild_id}:{day}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class Daily(commands.Cog):
    """The daily challenge."""

    daily = app_commands.Group(name="daily", description="Today's challenge: same item and bot "
                                                         "for everyone in this server",
                               guild_only=True)

    def __init__(self, bot: HaggleBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.announcer.start()

    async def cog_unload(self) -> None:
        self.announcer.cancel()

    def today(self, now: datetime | None = None) -> str:
        return challenge_day(now or datetime.now(UTC),
                             self.bot.settings.daily.day_starts_utc_hour)

    async def challenge(self, guild_id: int, day: str, channel_id: int | None) -> Any:
        """The server's challenge of ``day``, fixed now if nobody played it yet."""
        stored = await self.bot.store.daily_challenge(guild_id, day)
        if stored is not None:
            return stored
        games = self.bot.get_cog("Games")
        settings = self.bot.settings.daily
        human_role = Role.parse(settings.human_role)
        scenario = random.Random(challenge_seed(guild_id, day)).choice(
            await games.scenarios(settings.scenario_set))
        seed = secrets.randbelow(2**31)  # the day's secret: the agent's seed and its limit
        scenario = draw_private_limit(scenario, human_role.other, seed=seed,
                                      spread=self.bot.cfg.negotiation.reservation_spread)
        agent = settings.agent or await games.default_agent(guild_id, human_role.other)
        return await self.bot.store.ensure_daily_challenge(
            guild_id, day, scenario=scenario.to_dict(), agent=agent,
            human_role=human_role.value, seed=seed, channel_id=channel_id)

    @daily.command(name="play", description="Play today's challenge (once a day)")
    @checks.in_guild()
    @checks.bot_permissions(*checks.GAME_PERMISSIONS)
    @checks.per_person_cooldown("haggle_cooldown_s")
    async def play(self, interaction: discord.Interaction) -> None:
        if not self.bot.settings.daily.enabled:
            await respond(interaction, "The daily challenge is switched off on this bot.")
            return
        await defer(interaction, ephemeral=True)
        day = self.today()
        mine = await self.bot.store.daily_games(interaction.guild_id, day,
                                                player_id=interaction.user.id)
        if mine:
            state = "is still running" if mine[0].status == "active" else "is done"
            await respond(interaction, f"Your attempt at today's challenge ({day}) {state}: one "
                                       f"a day. `/daily standings` shows the ranking.")
            return
        challenge = await self.challenge(interaction.guild_id, day, interaction.channel_id)
        await self.bot.get_cog("Games").open_game(
            interaction, scenario=Scenario.from_dict(challenge.scenario),
            human_role=Role.parse(challenge.human_role), agent_name=challenge.agent,
            seed=challenge.seed, daily=day)

    @daily.command(name="standings", description="The ranking of a day's challenge")
    @app_commands.describe(day="Which day (default: today)")
    @app_commands.choices(day=[app_commands.Choice(name="today", value="today"),
                               app_commands.Choice(name="yesterday", value="yesterday")])
    @checks.in_guild()
    @checks.per_person_cooldown("command_cooldown_s")
    async def standings(self, interaction: discord.Interaction, day: str = "today") -> None:
        await defer(interaction, ephemeral=True)
        now = datetime.now(UTC) - (timedelta(days=1) if day == "yesterday" else timedelta())
        date = self.today(now)
        embed = await self.standings_embed(interaction.guild_id, date)
        await respond(interaction, embed=embed)

    async def standings_embed(self, guild_id: int, day: str, *, final: bool = False) -> discord.Embed:
        store = self.bot.store
        challenge = await store.daily_challenge(guild_id, day)
        rows = await store.daily_games(guild_id, day)
        names = await store.player_names(r.player_id for r in rows)
        ranking = daily_ranking(rows, names)
        running = sum(1 for r in rows if r.status == "active")
        title = f"{'Final ranking' if final else 'Standings'}: daily challenge {day}"
        if challenge is None:
            return discord.Embed(title=title, colour=INFO_COLOUR,
                                 description="Nobody has played this day's challenge.")
        sc = Scenario.from_dict(challenge.scenario)
        over = final or day < self.today()
        embed = discord.Embed(title=title, colour=INFO_COLOUR,
                              description=ranking_lines(ranking, shares=over))
        embed.add_field(name="Item", value=f"{safe_text(sc.title)} ({money(sc.listing_price)})")
        embed.add_field(name="Players were", value=f"the {challenge.human_role}s")
        embed.add_field(name="Against", value=f"`{challenge.agent}`")
        bot_role = Role.parse(challenge.human_role).other
        embed.add_field(name=f"The {bot_role.value}'s secret {limit_word(bot_role)}",
                        value=(f"{money(sc.reservation(bot_role))} (seed {challenge.seed})" if over
                               else "revealed once the day is over"))
        if running:
            embed.set_footer(text=f"{running} game(s) still running")
        return embed

    # ----------------------------------------------------------------- end of day

    @tasks.loop(minutes=5)
    async def announcer(self) -> None:
        try:
            await self.announce_finished_days()
        except Exception:
            log.exception("daily ranking announcement failed")

    @announcer.before_loop
    async def _before_announcer(self) -> None:
        await self.bot.wait_until_ready()

    async def announce_finished_days(self, now: datetime | None = None) -> list[tuple[int, str]]:
        """Post the final ranking of every past day whose games have all ended; returns the
        (server, day) pairs announced."""
        store = self.bot.store
        done = []
        for challenge in await store.unannounced_dailies(self.today(now)):
            rows = await store.daily_games(challenge.guild_id, challenge.day)
            if any(r.status == "active" for r in rows):
                continue  # the inactivity timeout will end them; announce after
            if rows and challenge.channel_id and not await self._post_ranking(challenge):
                continue  # the channel is out of reach for now (an outage): try again later
            await store.mark_daily_announced(challenge.guild_id, challenge.day)
            done.append((challenge.guild_id, challenge.day))
        return done

    async def _post_ranking(self, challenge: Any) -> bool:
        """Post the final ranking in the challenge's channel. True when it is done with: posted,
        or the channel is gone for good (deleted, or the bot may no longer see it); False when
        it is only unreachable right now (not in the cache and Discord failing), to retry.

        An archived thread is not in discord.py's cache: it is fetched, and posting in it
        unarchives it."""
        channel = self.bot.get_channel(challenge.channel_id)
        try:
            if channel is None:
                channel = await self.bot.fetch_channel(challenge.channel_id)
            embed = await self.standings_embed(challenge.guild_id, challenge.day, final=True)
            await channel.send(embed=embed)
        except (discord.NotFound, discord.Forbidden) as exc:
            log.warning("daily ranking of %s in %s dropped: the channel is gone (%s)",
                        challenge.day, challenge.channel_id, exc)
            return True
        except discord.HTTPException as exc:
            log.warning("daily ranking of %s in %s not posted yet: %s", challenge.day,
                        challenge.channel_id, exc)
            return False
        return True


async def setup(bot: HaggleBot) -> None:
    await bot.add_cog(Daily(bot))
