"""/tournament run | status | cancel | report: bot-vs-bot tournaments from Discord.

``run`` plans the tournament with bot.tournament (the same planning, resumable storage and
set-up checks as ``haggle tournament``), then works in the background: the tournament's
negotiations run through ``run_tournament`` while one showcase negotiation (the plan's first
pairing on its first item, with the same seeds) streams live into a thread, message edits
throttled to at most one per ``[bot] stream_edit_interval_s``. When it is done the report is
posted in the thread: the leaderboard as an embed and its PNG chart.

Tournaments are named after their arguments and the server, so running the same
``/tournament run`` again after a cancel or a restart finishes what is missing. One tournament
at a time per server; running and cancelling need Manage Server or the manager role.
Blocking work (hashing model files for the set-up snapshot, the report's statistics, the
charts) runs in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import io
import logging
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import checks
from bot.cogs._cards import INFO_COLOUR, pct
from bot.discord_util import (
    CHOICE_NAME_LIMIT,
    EMBED_FIELD_VALUE_LIMIT,
    MAX_CHOICES,
    THREAD_NAME_LIMIT,
    LiveMessage,
    ThreadLimit,
    clip,
    defer,
    label_text,
    open_thread,
    public_error,
    quietly,
    respond,
    safe_text,
    thread_host,
)
from bot.errors import HaggleError
from bot.negotiation.prompts import money
from bot.negotiation.turns import Role

if TYPE_CHECKING:
    from bot.agent_factory import AgentFactory
    from bot.app import HaggleBot

log = logging.getLogger(__name__)

# pyplot keeps global state: one chart-drawing thread at a time.
_PLOT_LOCK = threading.Lock()
SHOWCASE_LINE_CHARS = 400


@dataclass
class Job:
    """A tournament running in the background for one server."""

    guild_id: int
    plan: Any
    workers: int
    started_by: int
    channel_id: int
    thread: Any = None
    task: asyncio.Task | None = None
    started: float = field(default_factory=time.monotonic)
    already: int = 0
    ran: int = 0
    deals: int = 0
    errors: int = 0

    def stored_one(self, record: Any) -> None:
        """run_tournament's on_stored callback: one more negotiation is in the database."""
        self.ran += 1
        self.deals += record.deal_price is not None
        self.errors += record.error is not None

    def progress(self) -> str:
        done = self.already + self.ran
        elapsed = time.monotonic() - self.started
        return (f"{done}/{self.plan.planned} negotiations stored ({self.ran} this run), "
                f"{self.deals} deals, {self.errors} errors, {elapsed:.0f} s elapsed")


def _report_files(data: Any, report: Any) -> tuple[str, bytes] | None:
    """The report's leaderboard chart (or its agreement chart) as PNG bytes; worker thread."""
    from bot.report import write_plots

    with _PLOT_LOCK, tempfile.TemporaryDirectory(prefix="haggle-report-") as tmp:
        written = {p.name: p for p in write_plots(data, report, tmp)}
        for name in ("leaderboard.png", "agreement_by_pairing.png"):
            if name in written:
                return name, Path(written[name]).read_bytes()
    return None


class Tournaments(commands.Cog):
    """Bot-vs-bot tournaments."""

    tournament = app_commands.Group(name="tournament", description="Bot-vs-bot tournaments",
                                    guild_only=True)

    def __init__(self, bot: HaggleBot) -> None:
        self.bot = bot
        self.jobs: dict[int, Job] = {}
        self._starting: set[int] = set()  # servers whose /tournament run is being set up

    async def cog_unload(self) -> None:
        jobs = list(self.jobs.values())
        for job in jobs:
            if job.task is not None:
                job.task.cancel()
        await asyncio.gather(*(j.task for j in jobs if j.task is not None), return_exceptions=True)

    # ----------------------------------------------------------------- run

    @tournament.command(name="run", description="Start a bot-vs-bot tournament (streams one "
                                                 "negotiation live)")
    @app_commands.describe(
        agents="Agents, comma-separated: every pair where one can buy and another sell plays",
        scenarios="How many items each pairing haggles over",
        scenario_set="Where the items come from",
        workers="Negotiations run at the same time",
        seed="Seed of the item draw (same seed, same items)")
    @app_commands.choices(scenario_set=[
        app_commands.Choice(name="AgreeMate's 30 items (shipped)", value="agreemate"),
        app_commands.Choice(name="CraigslistBargains test split", value="craigslist-test"),
        app_commands.Choice(name="CraigslistBargains validation split",
                            value="craigslist-validation")])
    @checks.manager_only()
    @checks.bot_permissions(*checks.TOURNAMENT_PERMISSIONS)
    @checks.per_person_cooldown("command_cooldown_s")
    async def run(self, interaction: discord.Interaction, agents: str,
                  scenarios: app_commands.Range[int, 1, 100] = 5,
                  scenario_set: str = "agreemate",
                  workers: app_commands.Range[int, 1, 16] = 1,
                  seed: app_commands.Range[int, 0, 2_147_483_647] = 0) -> None:
        await defer(interaction, ephemeral=False)
        guild_id = interaction.guild_id
        refusal = self._reserve(guild_id)  # checked and reserved at once: no await between
        if refusal is not None:
            await respond(interaction, refusal)
            return
        try:
            await self._start(interaction, agents=agents, scenarios=scenarios,
                              scenario_set=scenario_set, workers=workers, seed=seed)
        finally:
            self._starting.discard(guild_id)

    def _reserve(self, guild_id: int) -> str | None:
        """Reserve this server's tournament slot (None), or say why not: one tournament at a
        time per server, at most ``[bot] max_running_tournaments`` on the whole bot."""
        running = self.jobs.get(guild_id)
        if running is not None:
            return (f"A tournament is already running here ({running.plan.name}): "
                    f"`/tournament status` shows it, `/tournament cancel` stops it.")
        if guild_id in self._starting:
            return "A tournament is being set up here right now: `/tournament status` shows it."
        cap = self.bot.settings.max_running_tournaments
        if len(self.jobs) + len(self._starting) >= cap:
            return (f"{cap} tournament(s) are running on this bot already, its limit "
                    f"(`max_running_tournaments`); try again when one is done.")
        self._starting.add(guild_id)
        return None

    async def _start(self, interaction: discord.Interaction, *, agents: str, scenarios: int,
                     scenario_set: str, workers: int, seed: int) -> None:
        from bot.tournament import default_name, plan_tournament, snapshot, split_names

        guild_id = interaction.guild_id
        names = split_names(agents)
        name = default_name(agents=names, buyers=(), sellers=(), scenario_set=scenario_set,
                            scenarios=scenarios, seed=seed, repetitions=1) + f"@{guild_id}"
        try:
            plan = await asyncio.to_thread(plan_tournament, self.bot.cfg, agents=names,
                                           scenario_set=scenario_set, scenarios=scenarios,
                                           seed=seed, name=name)
        except HaggleError as exc:
            await respond(interaction, f"Can't plan that tournament: {public_error(str(exc))}")
            return
        limit = self.bot.settings.max_tournament_negotiations
        if plan.planned > limit:
            await respond(interaction, f"That's {plan.planned} negotiations; the limit here is "
                                       f"{limit}. Use fewer agents or items, or run `haggle "
                                       f"tournament` on the bot's machine.")
            return
        # Read the model files' headers in a child process and hash them in a thread now:
        # run_tournament's set-up snapshot then hits the cache instead of reading gigabytes
        # (and parsing vocabularies on the bot's GIL) while games are played.
        from bot.app import read_model_headers

        used = {self.bot.cfg.agent(n).model for n in names if self.bot.cfg.agent(n).kind == "llm"}
        await read_model_headers(self.bot.cfg, used)
        await asyncio.to_thread(snapshot, self.bot.cfg, plan)
        # A thread of its own in a text or announcement channel (or theirs when used in one of
        # their threads); elsewhere (a forum post, a voice channel's chat) the tournament
        # streams right where it was started.
        parent = thread_host(interaction.channel)
        if parent is None:
            parent = thread = interaction.channel
        else:
            try:
                thread = await open_thread(parent, name=clip(label_text(f"Tournament {plan.name}"),
                                                             THREAD_NAME_LIMIT),
                                           reason=f"haggle tournament started by {interaction.user}")
            except ThreadLimit as exc:
                await respond(interaction, str(exc))
                return
        job = Job(guild_id=guild_id, plan=plan, started_by=interaction.user.id,
                  channel_id=parent.id, thread=thread,
                  workers=min(workers, self.bot.settings.max_tournament_workers))
        self.jobs[guild_id] = job
        self._starting.discard(guild_id)  # registered: no longer counted as being set up
        job.task = asyncio.create_task(self._run(job), name=f"tournament {plan.name}")
        job.task.add_done_callback(lambda _: self._forget(job))
        embed = discord.Embed(title=clip(f"Tournament started: {plan.name}", 256),
                              colour=INFO_COLOUR,
                              description=f"Live in {thread.mention}. `/tournament status` shows "
                                          f"progress.")
        embed.add_field(name="Pairings", value=clip(", ".join(map(str, plan.pairings)),
                                                    EMBED_FIELD_VALUE_LIMIT))
        embed.add_field(name="Negotiations", value=f"{plan.planned} ({len(plan.scenarios)} items)")
        embed.add_field(name="Workers", value=str(job.workers))
        await respond(interaction, embed=embed, ephemeral=False)

    @run.autocomplete("agents")
    async def _agents_choices(self, interaction: discord.Interaction,
                              current: str) -> list[app_commands.Choice[str]]:
        """Complete the last name of a comma-separated list."""
        done, _, last = current.rpartition(",")
        chosen = {n.strip() for n in done.split(",") if n.strip()}
        prefix = ", ".join(sorted(chosen)) + (", " if chosen else "")
        return [app_commands.Choice(name=clip(prefix + n, CHOICE_NAME_LIMIT),
                                    value=clip(prefix + n, CHOICE_NAME_LIMIT))
                for n in self.bot.cfg.agents
                if n not in chosen and last.strip().lower() in n.lower()][:MAX_CHOICES]

    async def _run(self, job: Job) -> None:
        from bot.tournament import run_tournament

        store, plan, thread = self.bot.store, job.plan, job.thread
        before = await store.tournament(plan.name)
        job.already = before.stored if before is not None else 0
        await quietly(thread.send(
            f"**{plan.name}**: {plan.planned} negotiations ({len(plan.pairings)} pairing(s) x "
            f"{len(plan.scenarios)} item(s)), {job.workers} worker(s)"
            + (f"; {job.already} stored by an earlier run" if job.already else "") + "."))
        factory = self.bot.tournament_factory()  # the bot's bounded model slots
        showcase = asyncio.create_task(self._showcase(job, factory), name="showcase")
        try:
            await run_tournament(self.bot.cfg, plan, store, workers=job.workers, progress=False,
                                 factory=factory, on_stored=job.stored_one)
            await showcase
            await self._link(job)
            embed, file = await self.report(plan.name)
            await quietly(thread.send(
                f"<@{job.started_by}> the tournament is done.", embed=embed,
                allowed_mentions=discord.AllowedMentions(users=True),
                **({"file": file} if file else {})))
        except asyncio.CancelledError:  # /tournament cancel, or the bot shutting down
            await self._link(job)
            raise
        except HaggleError as exc:
            log.warning("tournament %s stopped: %s", plan.name, exc)
            await quietly(thread.send(f"The tournament stopped: {public_error(str(exc))}"))
        except Exception as exc:
            incident = secrets.token_hex(3)
            log.error("tournament %s failed (incident %s)", plan.name, incident, exc_info=exc)
            await quietly(thread.send(f"The tournament stopped on an error on my side "
                                       f"(incident `{incident}`, logged). What was stored is "
                                       f"kept; run it again to resume."))
        finally:
            showcase.cancel()
            await asyncio.gather(showcase, return_exceptions=True)
            await factory.aclose()

    def _forget(self, job: Job) -> None:
        if self.jobs.get(job.guild_id) is job:
            del self.jobs[job.guild_id]

    async def _link(self, job: Job) -> None:
        row = await self.bot.store.tournament(job.plan.name)
        if row is not None:
            await self.bot.store.link_tournament(job.guild_id, row.id, channel_id=job.channel_id,
                                                 started_by=job.started_by)

    async def _showcase(self, job: Job, factory: AgentFactory) -> None:
        """One negotiation of the plan, played again turn by turn into the thread."""
        from bot.negotiation.runner import run_negotiation

        plan = job.plan
        match = plan.matches()[0]
        cfg = self.bot.cfg
        seats = {}
        for name, role in ((match.pairing.buyer, Role.BUYER), (match.pairing.seller, Role.SELLER)):
            seats[role] = factory.build(name, role, seed=cfg.agent(name).seed,
                                        seat=f"showcase/{role.value}")
        sc = match.scenario
        live = LiveMessage(job.thread, interval=self.bot.settings.stream_edit_interval_s)
        live.append(f"**Showcase, live:** `{match.pairing.buyer}` (buyer) vs "
                    f"`{match.pairing.seller}` (seller) over **{clip(safe_text(sc.title), 200)}**, listed at "
                    f"{money(sc.listing_price)}.")

        def on_turn(turn: Any, negotiation: Any) -> None:
            name = negotiation.names[turn.role]
            price = f" [{turn.act.value} {money(turn.price)}]" if turn.price is not None else \
                f" [{turn.act.value}]"
            live.append(f"**{turn.role.value}** `{name}`: "
                        f"{clip(turn.utterance, SHOWCASE_LINE_CHARS)}{price}")

        try:
            record = await run_negotiation(sc, seats[Role.BUYER], seats[Role.SELLER],
                                           max_turns=plan.max_turns, first_mover=plan.first_mover,
                                           turn_timeout=plan.turn_timeout, on_turn=on_turn)
            ending = (f"deal at {money(record.deal_price)}" if record.deal_price is not None
                      else f"no deal ({record.outcome.value.replace('_', ' ')})")
            live.append(f"**Result:** {ending} after {len(record.turns)} turns.")
        finally:
            await live.close()

    # ----------------------------------------------------------------- report

    async def report(self, name: str) -> tuple[discord.Embed, discord.File | None]:
        """The tournament's report: leaderboard and pairings in an embed, the chart attached."""
        from bot.report import build_report, load_report_data
        from bot.tournament import tournament_config

        data = await load_report_data(self.bot.store, [name])
        report = await asyncio.to_thread(
            lambda: build_report(data, fallback_flag=tournament_config(self.bot.cfg).fallback_flag))
        chart = await asyncio.to_thread(_report_files, data, report)
        t = report["tournaments"][0]
        embed = discord.Embed(title=clip(f"Tournament {name}", 256), colour=INFO_COLOUR,
                              description=f"{t['stored']}/{t['planned']} negotiations stored"
                                          + ("" if t["finished_at"] else " (unfinished)") + ".")
        board = []
        for r in report["leaderboard"][:10]:
            rating = "unrated" if r["rating"] is None else f"{r['rating']:.0f}"
            fallback = r.get("fallback") or {}
            flagged = (f" · **{pct(fallback['share'])} fallback play**"
                       if fallback.get("flagged") else "")
            board.append(f"**{r['rank']}.** `{r['agent']}` {rating} · "
                         f"{pct(r['agreement']['mean'])} deals · surplus "
                         f"{pct(r['surplus_share']['mean'])}{flagged}")
        embed.add_field(name="Leaderboard", value=clip("\n".join(board) or "no negotiations",
                                                       EMBED_FIELD_VALUE_LIMIT), inline=False)
        pairings = []
        for p in report["pairings"]:
            m = p["metrics"]
            pairings.append(f"{p['label']}: {pct(m['agreed']['mean'])} deals, fairness "
                            f"{_fmt(m['fairness']['mean'])}, bias {_fmt(m['bias']['mean'])}")
        embed.add_field(name="Pairings", value=clip("\n".join(pairings) or "none",
                                                    EMBED_FIELD_VALUE_LIMIT), inline=False)
        embed.set_footer(text="rating: Bradley-Terry over deals, 1500 = average · bias +1 = the "
                              "buyer got its target")
        file = None
        if chart is not None:
            filename, png = chart
            file = discord.File(io.BytesIO(png), filename=filename)
            embed.set_image(url=f"attachment://{filename}")
        return embed, file

    # ----------------------------------------------------------------- status, cancel, report

    @tournament.command(name="status", description="How the running tournament is doing")
    @checks.per_person_cooldown("command_cooldown_s")
    async def status(self, interaction: discord.Interaction) -> None:
        job = self.jobs.get(interaction.guild_id)
        if job is None:
            ids = await self.bot.store.guild_tournament_ids(interaction.guild_id)
            recent = [t.name for t in await self.bot.store.tournaments() if t.id in ids][-3:]
            tail = (" Recent: " + ", ".join(f"`{n}`" for n in recent) + " (`/tournament report`)."
                    if recent else "")
            await respond(interaction, "No tournament is running here." + tail)
            return
        await respond(interaction, f"**{job.plan.name}** (live in {job.thread.mention}): "
                                   f"{job.progress()}.")

    @tournament.command(name="cancel", description="Stop the running tournament (what is stored "
                                                    "stays; run it again to resume)")
    @checks.manager_only()
    async def cancel(self, interaction: discord.Interaction) -> None:
        job = self.jobs.get(interaction.guild_id)
        if job is None or job.task is None:
            await respond(interaction, "No tournament is running here.")
            return
        # Answer first: shutting down (running negotiations, the model pool) can take longer
        # than Discord's 3 s to answer; the final count follows in the same message.
        await respond(interaction, f"Cancelling **{job.plan.name}** ({job.progress()}); the "
                                   f"final count follows here and in {job.thread.mention}.",
                      ephemeral=False)
        job.task.cancel()
        await asyncio.gather(job.task, return_exceptions=True)
        note = (f"Cancelled: {job.progress()}. What is stored stays; run the same "
                f"`/tournament run` again to finish the rest.")
        await quietly(job.thread.send(note))
        await quietly(interaction.edit_original_response(content=f"**{job.plan.name}**: {note}"))

    @tournament.command(name="report", description="A tournament's leaderboard and chart")
    @app_commands.describe(name="The tournament (suggestions list this server's first)")
    @checks.per_person_cooldown("command_cooldown_s")
    async def report_command(self, interaction: discord.Interaction, name: str) -> None:
        await defer(interaction, ephemeral=False)
        if name not in {t.name for t in await self._visible(interaction.guild_id)}:
            await respond(interaction, f"No tournament called {clip(name, 100)!r} in this "
                                       f"server; pick one from the suggestions.")
            return
        embed, file = await self.report(name)
        await respond(interaction, embed=embed, ephemeral=False, **({"file": file} if file else {}))

    async def _visible(self, guild_id: int | None) -> list[Any]:
        """The tournaments this server ran (or runs now): never another server's."""
        if guild_id is None:
            return []
        ids = set(await self.bot.store.guild_tournament_ids(guild_id))
        job = self.jobs.get(guild_id)
        running = job.plan.name if job is not None else None
        return [t for t in await self.bot.store.tournaments() if t.id in ids or t.name == running]

    @report_command.autocomplete("name")
    async def _name_choices(self, interaction: discord.Interaction,
                            current: str) -> list[app_commands.Choice[str]]:
        rows = sorted(await self._visible(interaction.guild_id), key=lambda t: -t.id)
        return [app_commands.Choice(name=clip(t.name, CHOICE_NAME_LIMIT), value=t.name)
                for t in rows if current.lower() in t.name.lower()
                and len(t.name) <= CHOICE_NAME_LIMIT][:MAX_CHOICES]


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


async def setup(bot: HaggleBot) -> None:
    await bot.add_cog(Tournaments(bot))
