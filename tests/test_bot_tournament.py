"""/tournament through the real Tournaments cog: a run in the background with a live showcase
thread and the report posted, permission refusals, status, cancel, resume, report."""

from __future__ import annotations

import asyncio
from itertools import pairwise

import pytest
from bot_fakes import World, invoke, make_config, start_bot


def skip_charts(monkeypatch):
    """Skip drawing the PNG where a test is not about the report (matplotlib takes seconds).
    Call it once the bot is up: discord.py imports an extension afresh at every load."""
    import sys

    monkeypatch.setattr(sys.modules["bot.cogs.tournaments"], "_report_files",
                        lambda data, report: None)


@pytest.fixture
async def world(tmp_path):
    bot = await start_bot(tmp_path)
    yield World(bot)
    await bot.close()


def cog(world):
    return world.bot.get_cog("Tournaments")


async def run(world, user, **params):
    interaction = world.interaction(user)
    await invoke(cog(world).run, interaction, **params)
    return interaction


async def test_a_tournament_runs_streams_a_showcase_and_posts_its_report(world):
    boss = world.person("boss", manage_guild=True)
    interaction = await run(world, boss, agents="rule-buyer, rule-seller", scenarios=3)
    assert interaction.response.deferred == {"ephemeral": False, "thinking": True}
    started = interaction.sent[-1]["embed"]
    assert started.title.startswith("Tournament started") and not interaction.sent[-1]["ephemeral"]
    job = cog(world).jobs[world.guild.id]
    thread = job.thread
    assert thread.parent is world.channel and thread.mention in started.description
    await job.task

    stream = [m for m in thread.messages if m.content.startswith("**Showcase, live:**")]
    assert len(stream) == 1 and "**Result:**" in stream[0].content  # edited until the end
    assert "**buyer** `rule-buyer`" in stream[0].content
    assert all(len(m.content) <= 2000 for m in thread.messages)
    report = thread.messages[-1]
    assert f"<@{boss.id}>" in report.content and report.embed.title == f"Tournament {job.plan.name}"
    assert report.file is not None and report.file.filename == "leaderboard.png"
    assert report.file.fp.read(8) == b"\x89PNG\r\n\x1a\n"
    assert report.embed.image.url == "attachment://leaderboard.png"
    fields = {f.name: f.value for f in report.embed.fields}
    assert "`rule-buyer`" in fields["Leaderboard"] and "rule-buyer vs rule-seller" in fields["Pairings"]

    row = await world.bot.store.tournament(job.plan.name)
    assert row.stored == 3 and row.finished_at is not None
    assert await world.bot.store.guild_tournament_ids(world.guild.id) == [row.id]
    assert world.guild.id not in cog(world).jobs


async def test_showcase_updates_are_throttled_to_one_per_second(world, monkeypatch):
    skip_charts(monkeypatch)
    boss = world.person("boss", manage_guild=True)
    await run(world, boss, agents="rule-buyer,rule-seller", scenarios=1)
    job = cog(world).jobs[world.guild.id]
    await job.task
    thread = job.thread
    (showcase,) = [m for m in thread.messages if m.content.startswith("**Showcase")]
    # the rule agents play all their turns at once: the stream is one send, then one edit
    # carrying everything that arrived meanwhile, at least a second later
    times = [t for (kind, mid), t in zip(thread.calls, thread.call_times, strict=False) if mid == showcase.id]
    assert 2 <= len(times) <= 3 and len(showcase.edits) == len(times) - 1
    assert all(b - a >= 0.99 for a, b in pairwise(times))


async def test_only_managers_run_and_cancel(tmp_path, monkeypatch):
    bot = await start_bot(tmp_path, make_config(bot={"manager_role": "Hagglemaster"}))
    skip_charts(monkeypatch)
    world = World(bot)
    try:
        pleb = world.person("pleb")
        refused = await run(world, pleb, agents="rule-buyer,rule-seller", scenarios=1)
        assert "Manage Server" in refused.text and "Hagglemaster" in refused.text
        assert refused.sent[-1]["ephemeral"] and refused.response.deferred is None
        assert cog(world).jobs == {}
        cancel = world.interaction(pleb)
        await invoke(cog(world).cancel, cancel)
        assert "Manage Server" in cancel.text

        master = world.person("master", roles=("Hagglemaster",))
        allowed = await run(world, master, agents="rule-buyer,rule-seller", scenarios=1)
        assert "Tournament started" in allowed.text
        await cog(world).jobs[world.guild.id].task
    finally:
        await bot.close()


async def test_bad_plans_are_refused_with_the_reason(tmp_path):
    bot = await start_bot(tmp_path, make_config(bot={"max_tournament_negotiations": 4}))
    world = World(bot)
    try:
        boss = world.person("boss", manage_guild=True)
        unknown = await run(world, boss, agents="rule-buyer,nobody")
        assert "unknown agent 'nobody'" in unknown.text
        too_big = await run(world, boss, agents="rule-buyer,rule-seller", scenarios=5)
        assert "That's 5 negotiations; the limit here is 4" in too_big.text
        assert world.channel.threads == []
    finally:
        await bot.close()


async def test_status_cancel_and_resume(world, monkeypatch):
    skip_charts(monkeypatch)
    boss = world.person("boss", manage_guild=True)
    games = world.bot.get_cog("Tournaments")
    idle = world.interaction(boss)
    await invoke(games.status, idle)
    assert "No tournament is running here" in idle.text

    gate = asyncio.Event()
    import bot.tournament as tournament_module

    real_run = tournament_module.run_tournament

    async def slow_run(*args, **kwargs):  # hold the run until the test has looked at it
        await gate.wait()
        return await real_run(*args, **kwargs)

    tournament_module.run_tournament = slow_run
    try:
        await run(world, boss, agents="rule-buyer,rule-seller", scenarios=2)
        job = games.jobs[world.guild.id]
        busy = await run(world, boss, agents="rule-buyer,rule-seller", scenarios=2)
        assert "already running" in busy.text
        status = world.interaction(boss)
        await invoke(games.status, status)
        assert job.plan.name in status.text and "0/2 negotiations stored" in status.text
        cancel = world.interaction(boss)
        await invoke(games.cancel, cancel)
        assert "Cancelled: 0/2 negotiations stored" in cancel.text and job.task.cancelled()
        assert "Cancelled:" in job.thread.texts[-1] and "run the same" in job.thread.texts[-1].lower()
        assert world.guild.id not in games.jobs
    finally:
        tournament_module.run_tournament = real_run

    again = await run(world, boss, agents="rule-buyer,rule-seller", scenarios=2)
    assert "Tournament started" in again.text
    job = games.jobs[world.guild.id]
    assert job.plan.name == f"rule-buyer,rule-seller.agreemate-2.seed0.rep1@{world.guild.id}"
    await job.task
    assert (await world.bot.store.tournament(job.plan.name)).stored == 2


async def test_report_command_and_its_autocomplete(world):
    boss = world.person("boss", manage_guild=True)
    with pytest.MonkeyPatch.context() as patch:  # the chart is drawn by the command below
        skip_charts(patch)
        await run(world, boss, agents="rule-buyer,rule-seller", scenarios=2)
        name = cog(world).jobs[world.guild.id].plan.name
        await cog(world).jobs[world.guild.id].task

    choices = await cog(world)._name_choices(world.interaction(boss), "rule")
    assert [c.value for c in choices] == [name]
    reader = world.person("reader")
    interaction = world.interaction(reader)
    await invoke(cog(world).report_command, interaction, name=name)
    sent = interaction.sent[-1]
    assert sent["embed"].title == f"Tournament {name}" and sent["file"].filename == "leaderboard.png"
    missing = world.interaction(reader)
    await invoke(cog(world).report_command, missing, name="no such thing")
    assert "No tournament called" in missing.text


async def test_agents_autocomplete_completes_the_last_name(world):
    choices = await cog(world)._agents_choices(world.interaction(world.person("x")), "rule-buyer, rule-s")
    assert [c.value for c in choices] == ["rule-buyer, rule-seller"]
