"""/daily through the real Daily cog: the same item, agent and seed for everyone in a server
that day, one attempt each, standings, and the final ranking posted once the day is over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bot_fakes import FakeGuild, World, invoke, make_config, start_bot

from bot.cogs.daily import challenge_day, challenge_seed


@pytest.fixture
async def world(tmp_path):
    bot = await start_bot(tmp_path, make_config(bot={"daily": {"agent": "rule-seller"}}))
    yield World(bot)
    await bot.close()


def daily(world):
    return world.bot.get_cog("Daily")


async def play(world, user):
    before = len(world.channel.threads)
    interaction = world.interaction(user)
    await invoke(daily(world).play, interaction)
    thread = world.channel.threads[-1] if len(world.channel.threads) > before else None
    if thread is not None:
        world._channels[thread.id] = thread
    return interaction, thread


def test_days_change_at_the_configured_hour_and_seeds_differ():
    late = datetime(2025, 3, 1, 5, 30, tzinfo=UTC)
    assert challenge_day(late, 0) == "2025-03-01"
    assert challenge_day(late, 6) == "2025-02-28"
    assert challenge_seed(1, "2025-03-01") == challenge_seed(1, "2025-03-01")
    assert len({challenge_seed(g, d) for g in (1, 2) for d in ("2025-03-01", "2025-03-02")}) == 4


async def test_everyone_gets_the_same_challenge_once_and_a_ranking(world):
    ann, ben = world.person("ann"), world.person("ben")
    _, ann_thread = await play(world, ann)
    _, ben_thread = await play(world, ben)
    ann_game = world.games.live[world.games.places[ann_thread.id]]
    ben_game = world.games.live[world.games.places[ben_thread.id]]
    assert ann_game.game.scenario == ben_game.game.scenario
    assert (ann_game.seed, ann_game.agent_name) == (ben_game.seed, ben_game.agent_name)
    assert ann_game.agent_name == "rule-seller" and ann_game.daily == daily(world).today()
    assert ann_thread.messages[0].embed.title.startswith(f"Daily challenge {ann_game.daily}")

    again, none = await play(world, ann)
    assert none is None and "still running" in again.text and "one a day" in again.text

    # ann bargains hard and takes the bot's offer; ben accepts its opening price
    listing = ann_game.game.scenario.listing_price
    await world.say(ann, ann_thread, f"would you take ${listing * 0.6:.0f}?")
    await world.say(ann, ann_thread, f"how about ${listing * 0.65:.0f}?")
    await world.press(ann, ann_thread, "accept")
    await world.say(ben, ben_thread, "hi")
    await world.press(ben, ben_thread, "accept")

    cal = world.person("cal")
    _, cal_thread = await play(world, cal)
    await world.press(cal, cal_thread, "walk")

    again, _ = await play(world, ann)
    assert "is done" in again.text
    standings = world.interaction(cal)
    await invoke(daily(world).standings, standings)
    embed = standings.sent[-1]["embed"]
    lines = embed.description.splitlines()
    assert lines[0].startswith("**1.** ann: deal at") and lines[1].startswith("**2.** ben: deal at")
    assert lines[2] == "**3.** cal: no deal (quit)"
    rows = await world.bot.store.finished_games(daily=ann_game.daily)
    assert {r.player_id for r in rows} == {ann.id, ben.id, cal.id}

    # the day's limit stays secret: neither the cards nor the standings give it (or the share
    # of the zone, from which it follows) away while the day runs
    bottom = ann_game.game.scenario.seller_reservation
    card = {f.name: f.value for f in ann_thread.embeds[-1].fields}
    assert "once the day is over" in card["The seller's secret bottom line"]
    assert not any(k.startswith("Your surplus") for k in card)
    assert "% of the zone" not in embed.description
    assert {f.name: f.value for f in embed.fields}["The seller's secret bottom line"] == \
        "revealed once the day is over"
    assert f"${bottom:,.0f}" not in str([f.value for f in embed.fields])
    # ... and the seed is the day's secret, not the published formula
    assert ann_game.seed != challenge_seed(world.guild.id, ann_game.daily)


async def test_the_final_ranking_is_posted_once_after_the_day(world):
    dee = world.person("dee")
    _, thread = await play(world, dee)
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert await daily(world).announce_finished_days(now=tomorrow) == []  # dee still playing
    await world.press(dee, thread, "walk")
    day = daily(world).today()
    assert await daily(world).announce_finished_days() == []  # the day is not over yet
    assert await daily(world).announce_finished_days(now=tomorrow) == [(world.guild.id, day)]
    final = world.channel.messages[-1].embed
    assert final.title == f"Final ranking: daily challenge {day}" and "dee" in final.description
    challenge = await world.bot.store.daily_challenge(world.guild.id, day)
    bottom = challenge.scenario["seller_reservation"]
    revealed = {f.name: f.value for f in final.fields}["The seller's secret bottom line"]
    assert revealed == f"${bottom:,.0f} (seed {challenge.seed})"  # revealed after the day
    assert await daily(world).announce_finished_days(now=tomorrow) == []  # only once


async def test_each_server_has_its_own_challenge(world):
    first = await daily(world).challenge(world.guild.id, "2025-03-01", None)
    other = await daily(world).challenge(FakeGuild().id, "2025-03-01", None)
    same = await daily(world).challenge(world.guild.id, "2025-03-01", None)
    assert first == same and first.seed != other.seed


async def test_daily_can_be_switched_off(tmp_path):
    bot = await start_bot(tmp_path, make_config(bot={"daily": {"enabled": False}}))
    try:
        world = World(bot)
        interaction, thread = await play(world, world.person("eve"))
        assert thread is None and "switched off" in interaction.text
    finally:
        await bot.close()
