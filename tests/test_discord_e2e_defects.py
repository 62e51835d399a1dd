"""The defects the loopback Discord found (issue 16), each as the test that failed before its fix.

Each test plays what a person does through the unmodified discord.py client; the loopback
enforces Discord's rules (3 s to answer, the follow-up visibility rule, thread types, the
active-thread cap).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from discord_e2e import LONGBOARD, open_world

from tests.loopback_discord import state as st
from tests.loopback_discord import text_of

EPHEMERAL = 1 << 6


async def open_game(world, user, channel=None, **options):
    options = {"role": "buyer", "item": LONGBOARD, "agent": "rule-seller", **options}
    ix = await world.invoke(user, channel or world.general, "haggle", **options)
    thread = world.thread_of(ix)
    await world.drive.next_bot_message(thread, after=0)
    return ix, thread


# ------------------------------------------------------------------------ 1: silent button


async def test_1_a_failing_button_press_gets_an_answer(world):
    _, thread = await open_game(world, world.alice)
    games = world.bot.get_cog("Games")

    async def broken(*args, **kwargs):
        raise RuntimeError("the store is gone")

    games.press = broken
    intro = world.drive.bot_messages(thread)[0]
    ix = await world.drive.click(world.alice, intro, world.drive.button(intro, "haggle:game:accept"),
                                 wait=False)
    await world.drive.answered(ix, timeout=15)
    assert ix.answered and "went wrong" in ix.texts[-1] and ix.replies[-1]["flags"] & EPHEMERAL


# ------------------------------------------------------------------------ 2: slow cancel


def slow_backend_factory(close_s):
    from bot.llm.fake import FakeBackend, Slow

    class SlowToClose(FakeBackend):
        async def aclose(self) -> None:
            await asyncio.sleep(close_s)  # a model that takes its time to unload
            await super().aclose()

    def reply(messages):
        return '{"act": "counter-price", "price": 170, "utterance": "How about $170?"}'

    return lambda spec: SlowToClose(default=Slow(reply, 0.3))


async def test_2_tournament_cancel_answers_within_3_s_of_a_slow_shutdown(request, tmp_path):
    async with open_world(request, tmp_path, backend_factory=slow_backend_factory(3.5)) as w:
        run = await w.invoke(w.owner, w.general, "tournament run", agents="llm-buyer, llm-seller",
                             scenarios=3)
        assert "Tournament started" in text_of(run.replies[-1])
        thread = w.thread_of(run)
        await w.drive.next_bot_message(thread, after=0)
        cancel = await w.invoke(w.owner, w.general, "tournament cancel", timeout=15)
        await w.discord.wait_for(lambda: any("Cancelled" in m["content"]
                                             for m in w.drive.bot_messages(thread)), 15)
        assert not cancel.errors, f"Discord refused the answer: {cancel.errors}"
        assert cancel.answered and "Cancel" in text_of(cancel.replies[-1])


# ------------------------------------------------------------------------ 3: private refusals


async def test_3_a_private_refusal_after_a_public_deferral_stays_private(request, tmp_path):
    async with open_world(request, tmp_path, leaks_expected=True) as w:
        ix = await w.invoke(w.alice, w.general, "tournament report", name="no-such-tournament")
        assert "No tournament called" in ix.texts[-1]
        assert ix.replies[-1]["flags"] & EPHEMERAL, "everyone in #general saw a private refusal"
        assert not w.discord.private_shown_publicly


# ------------------------------------------------------------------------ 4: threads


async def test_4a_a_finished_game_thread_is_archived(world):
    _, thread = await open_game(world, world.alice)
    intro = world.drive.bot_messages(thread)[0]
    await world.drive.click(world.alice, intro, world.drive.button(intro, "haggle:game:walk"))
    await world.discord.wait_for(lambda: "No deal" in text_of(world.drive.bot_messages(thread)[-1]))
    await world.discord.wait_for(lambda: thread.archived, timeout=15)


async def test_4b_haggle_in_an_announcement_channel_opens_an_announcement_thread(world):
    news = world.discord.add_channel(world.guild, "news", st.NEWS)
    await world.discord.gateway.dispatch("CHANNEL_CREATE", news.payload(), guild_id=world.guild.id)
    await asyncio.sleep(0.05)
    _, thread = await open_game(world, world.alice, news)
    assert thread.type == st.NEWS_THREAD and thread.parent_id == news.id


async def test_4c_at_the_active_thread_cap_haggle_says_so(world):
    world.discord.active_thread_cap = 0
    ix = await world.invoke(world.alice, world.general, "haggle", item=LONGBOARD, agent="rule-seller")
    world.discord.take(160006)
    assert "active threads" in ix.texts[-1] and "went wrong" not in ix.texts[-1]


# ------------------------------------------------------------------------ 5: tournament places


async def tournament_in(w, channel):
    ix = await w.invoke(w.owner, channel, "tournament run", agents="rule-buyer, rule-seller",
                        scenarios=1, timeout=15)
    assert ix.answered and "went wrong" not in " ".join(ix.texts), ix.texts
    return ix


@pytest.mark.parametrize("place", ["forum post", "announcement thread", "voice chat"])
async def test_5_tournament_run_in_unusual_channels_works(world, place):
    d = world.discord
    if place == "forum post":
        forum = d.add_channel(world.guild, "forum", st.FORUM)
        channel = d.add_channel(world.guild, "a post", st.PUBLIC_THREAD, parent=forum, owner=world.owner)
        created = [forum, channel]
    elif place == "announcement thread":
        news = d.add_channel(world.guild, "news", st.NEWS)
        channel = d.add_channel(world.guild, "a thread", st.NEWS_THREAD, parent=news, owner=world.owner)
        created = [news, channel]
    else:
        channel = d.add_channel(world.guild, "voice", st.VOICE)
        created = [channel]
    for c in created:
        event = "THREAD_CREATE" if c.is_thread else "CHANNEL_CREATE"
        await d.gateway.dispatch(event, c.payload(), guild_id=world.guild.id)
    await asyncio.sleep(0.05)
    await tournament_in(world, channel)
    await d.wait_for(lambda: any("tournament is done" in m.get("content", "")
                                 for c in d.channels.values() for m in c.messages), 20)


# ------------------------------------------------------------------------ 6: daily ranking


async def test_6_the_daily_ranking_reaches_an_archived_thread(world):
    d = world.discord
    place = d.add_channel(world.guild, "daily-thread", st.PUBLIC_THREAD, parent=world.general,
                          owner=world.owner)
    await d.gateway.dispatch("THREAD_CREATE", place.payload(), guild_id=world.guild.id)
    await asyncio.sleep(0.05)
    ix = await world.invoke(world.alice, place, "daily play")
    thread = world.thread_of(ix)
    await world.drive.next_bot_message(thread, after=0)
    intro = world.drive.bot_messages(thread)[0]
    await world.drive.click(world.alice, intro, world.drive.button(intro, "haggle:game:walk"))
    await d.wait_for(lambda: "No deal" in text_of(world.drive.bot_messages(thread)[-1]))
    await d.archive(place)
    await asyncio.sleep(0.05)
    daily = world.bot.get_cog("Daily")
    await daily.announce_finished_days(datetime.now(UTC) + timedelta(days=1))
    assert any("Final ranking" in text_of(m) for m in world.drive.bot_messages(place))


# ------------------------------------------------------------------------ 7: stale commands


async def test_7a_a_stale_command_tells_the_owner_to_sync(world):
    tournament = next(c for c in world.discord.global_commands if c["name"] == "tournament")
    run = next(o for o in tournament["options"] if o["name"] == "run")
    run["options"] = [o for o in run["options"] if o["name"] != "agents"]  # an older version
    world.discord.global_commands.append({**world.discord.global_commands[0], "name": "oldcommand",
                                          "id": str(world.discord.ids()), "options": []})
    ix = await world.invoke(world.owner, world.general, "tournament run", scenarios=1)
    assert "sync" in ix.texts[-1] and "went wrong" not in ix.texts[-1]
    gone = await world.invoke(world.alice, world.general, "oldcommand")
    assert "sync" in gone.texts[-1] and "went wrong" not in gone.texts[-1]


async def test_7b_the_first_item_autocomplete_answers_within_3_s(request, tmp_path, monkeypatch):
    import time

    import bot.scenarios

    real = bot.scenarios.load_scenario_set

    def slow(cfg, name):
        time.sleep(3.5)  # a big dataset file, or a download
        return real(cfg, name)

    monkeypatch.setattr(bot.scenarios, "load_scenario_set", slow)
    async with open_world(request, tmp_path) as w:
        ix_choices = await w.drive.autocomplete(w.alice, w.general, "haggle", "item", item="long")
        assert not [i for i in w.discord.interactions.values() if i.errors]
        assert ix_choices and len(ix_choices) <= 25
