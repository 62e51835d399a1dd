"""/daily, /tournament, /leaderboard, /stats, /models and the owner's @haggle sync end to end:
the real HaggleBot's discord.py client against the loopback Discord."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from discord_e2e import LONGBOARD, open_world

from tests.loopback_discord import text_of

EPHEMERAL = 1 << 6


async def finish_a_game(world, user, channel=None, command="haggle", **options):
    if command == "haggle":
        options = {"item": LONGBOARD, "agent": "rule-seller", **options}
    ix = await world.invoke(user, channel or world.general, command, **options)
    thread = world.thread_of(ix)
    await world.drive.next_bot_message(thread, after=0)
    # no price: the daily item differs by server and day, so an offer could look like a typo
    await world.say(user, thread, "hi! is it still available?")
    intro = world.drive.bot_messages(thread)[0]
    await world.drive.click(user, intro, world.drive.button(intro, "haggle:game:accept"))
    await world.discord.wait_for(lambda: "Deal at" in text_of(world.drive.bot_messages(thread)[-1]))
    return ix, thread


async def test_daily_play_standings_and_the_posted_ranking(world):
    _, thread = await finish_a_game(world, world.alice, command="daily play")
    assert "Daily challenge" in text_of(world.drive.bot_messages(thread)[0])
    again = await world.invoke(world.alice, world.general, "daily play")
    assert "one a day" in again.texts[-1] and again.ephemeral
    standings = await world.invoke(world.bob, world.general, "daily standings")
    assert "alice" in text_of(standings.replies[-1]) and standings.ephemeral
    daily = world.bot.get_cog("Daily")
    announced = await daily.announce_finished_days(datetime.now(UTC) + timedelta(days=1))
    assert announced == [(world.guild.id, daily.today())]
    ranking = world.drive.bot_messages(world.general)[-1]
    assert "Final ranking" in text_of(ranking) and "alice" in text_of(ranking)


async def test_tournament_run_status_report_with_live_thread_and_png(world):
    run = await world.invoke(world.owner, world.general, "tournament run",
                             agents="rule-buyer, rule-seller", scenarios=2, timeout=20)
    assert not run.ephemeral and "Tournament started" in text_of(run.replies[-1])
    thread = world.thread_of(run)
    status = await world.invoke(world.alice, world.general, "tournament status")
    assert status.ephemeral and ("negotiations stored" in status.texts[-1]
                                 or "No tournament is running" in status.texts[-1])
    d = world.discord
    await d.wait_for(lambda: any("tournament is done" in m["content"]
                                 for m in world.drive.bot_messages(thread)), 30)
    done = next(m for m in world.drive.bot_messages(thread) if "tournament is done" in m["content"])
    assert done["attachments"][0]["filename"] == "leaderboard.png"
    assert d.files[done["attachments"][0]["id"]][:8] == b"\x89PNG\r\n\x1a\n"
    assert "Leaderboard" in text_of(done)
    live = next(m for m in world.drive.bot_messages(thread) if "Showcase, live" in m["content"])
    assert "**Result:**" in live["content"]  # streamed by edits to the end
    name = text_of(done).split("Tournament ", 1)[1].split("\n")[0]
    choices = await world.drive.autocomplete(world.alice, world.general, "tournament report",
                                             "name", name=name[:10])
    assert name in [c["value"] for c in choices] and len(choices) <= 25
    report = await world.invoke(world.alice, world.general, "tournament report", name=name,
                                timeout=20)
    assert not report.ephemeral and report.replies[-1]["attachments"]
    board = await world.invoke(world.alice, world.general, "leaderboard", board="agents")
    assert "rule-buyer" in text_of(board.replies[-1]) and not board.ephemeral


async def test_leaderboard_stats_and_models(world):
    await finish_a_game(world, world.alice)
    board = await world.invoke(world.bob, world.general, "leaderboard")
    assert "alice" in text_of(board.replies[-1])
    stats = await world.invoke(world.bob, world.general, "stats", member=world.alice)
    assert "alice's haggling record" in text_of(stats.replies[-1]) and stats.ephemeral
    mine = await world.invoke(world.bob, world.general, "stats")
    assert "No finished games yet" in text_of(mine.replies[-1])
    models = await world.invoke(world.alice, world.general, "models list")
    assert "rule-seller" in text_of(models.replies[-1]) and models.ephemeral
    refused = await world.invoke(world.alice, world.general, "models default", agent="rule")
    assert "Manage Server" in refused.texts[-1] and refused.ephemeral
    choices = await world.drive.autocomplete(world.owner, world.general, "models default", "agent",
                                             agent="rule")
    assert {"rule", "rule-seller", "rule-buyer"} <= {c["value"] for c in choices}
    done = await world.invoke(world.owner, world.general, "models default", agent="rule")
    assert "`rule` is this server's default agent" in done.texts[-1] and not done.ephemeral


async def test_owner_sync_by_mention_and_strangers_get_silence(world):
    before = len(world.drive.bot_messages(world.general))
    await world.drive.say(world.owner, world.general, "sync", mention_bot=True)
    reply = await world.drive.next_bot_message(world.general, after=before)
    assert reply["content"].startswith("Synced 6 command(s) to this server")
    assert {c["name"] for c in world.discord.guild_commands[world.guild.id]} >= {"haggle", "daily"}
    await world.drive.say(world.alice, world.general, "sync", mention_bot=True)
    await asyncio.sleep(0.3)
    assert len(world.drive.bot_messages(world.general)) == before + 1  # no answer to alice


async def test_item_autocomplete_lists_at_most_25_items(world):
    choices = await world.drive.autocomplete(world.alice, world.general, "haggle", "item", item="")
    assert 1 < len(choices) <= 25 and choices[0]["value"] == "random"
    board = await world.drive.autocomplete(world.alice, world.general, "haggle", "item", item="long")
    assert LONGBOARD in [c["value"] for c in board]


async def test_missing_permissions_get_a_private_answer_naming_them(world):
    from tests.loopback_discord import state as st

    world.general.deny[world.discord.bot_user.id] = st.PERMISSIONS["create_public_threads"]
    ix = await world.invoke(world.alice, world.general, "haggle", item=LONGBOARD)
    assert "Create Public Threads" in ix.texts[-1] and ix.ephemeral
    assert not world.drive.threads(world.general)


async def test_a_second_tournament_is_refused_privately(request, tmp_path):
    from bot.llm.fake import FakeBackend, Slow

    reply = '{"act": "counter-price", "price": 170, "utterance": "How about $170?"}'

    def slow(spec):
        return FakeBackend(default=Slow(reply, 0.3))
    async with open_world(request, tmp_path, backend_factory=slow) as w:
        run = await w.invoke(w.owner, w.general, "tournament run", agents="llm-buyer, llm-seller",
                             scenarios=3)
        assert not run.ephemeral and "Tournament started" in text_of(run.replies[-1])
        again = await w.invoke(w.owner, w.general, "tournament run",
                               agents="rule-buyer, rule-seller", scenarios=1)
        assert "already running" in again.texts[-1]
        assert again.replies[-1]["flags"] & EPHEMERAL  # after a public deferral, still private
        cancel = await w.invoke(w.owner, w.general, "tournament cancel")
        assert "Cancel" in cancel.texts[-1]
        await w.discord.wait_for(lambda: "Cancelled" in cancel.texts[-1])
