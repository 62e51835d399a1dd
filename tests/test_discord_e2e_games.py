"""/haggle end to end: the unmodified discord.py client of the real HaggleBot, over HTTP and the
gateway, against the loopback Discord (a real SQLite file, rule agents)."""

from __future__ import annotations

import pytest
from discord_e2e import LONGBOARD, open_world

from tests.loopback_discord import CommandNotSynced, text_of
from tests.loopback_discord.world import AGENTS


async def test_login_and_sync_register_every_command(world):
    names = {c["name"] for c in world.discord.global_commands}
    assert names == {"haggle", "daily", "tournament", "leaderboard", "stats", "models"}
    assert world.discord.gateway.live_sessions()[0].identifies == 1
    assert ("GET", "/users/@me") in world.discord.requests


async def open_game(world, user, role="buyer", agent="rule-seller"):
    ix = await world.invoke(user, world.general, "haggle", role=role, item=LONGBOARD, agent=agent)
    assert ix.ephemeral and ix.response_type == 5  # deferred privately first
    thread = world.thread_of(ix)
    await world.drive.next_bot_message(thread, after=0)
    return ix, thread


async def test_haggle_as_buyer_to_a_deal_by_typing(world):
    _, thread = await open_game(world, world.alice)
    assert thread.type == 11 and thread.parent_id == world.general.id
    intro = world.drive.bot_messages(thread)[0]
    assert "Long board" in text_of(intro) and intro["components"]
    reply = await world.say(world.alice, thread, "would you take $120?")
    assert "yours $120" in reply["content"]
    await world.say(world.alice, thread, "I accept your offer")
    await world.discord.wait_for(lambda: "Deal at" in text_of(world.drive.bot_messages(thread)[-1]))
    card = world.drive.bot_messages(thread)[-1]
    assert "secret bottom line" in text_of(card)
    await world.discord.wait_for(lambda: not world.drive.bot_messages(thread)[0]["components"])
    (row,) = await world.bot.store.finished_games()
    assert row.outcome == "deal" and row.player_id == world.alice.id


async def test_haggle_as_seller_to_a_deal_by_typing(world):
    _, thread = await open_game(world, world.bob, role="seller", agent="rule-buyer")
    await world.discord.wait_for(lambda: len(world.drive.bot_messages(thread)) >= 2)
    opening = world.drive.bot_messages(thread)[1]  # the buyer speaks first
    assert "buyer's offer" in opening["content"] or "no offer" in opening["content"]
    reply = await world.say(world.bob, thread, "I'd let it go for $190")
    assert "yours $190" in reply["content"]
    await world.say(world.bob, thread, "deal, I accept")
    await world.discord.wait_for(lambda: "Deal at" in text_of(world.drive.bot_messages(thread)[-1]))
    (row,) = await world.bot.store.finished_games()
    assert row.outcome == "deal" and row.human_role == "seller"


async def test_accept_status_and_someone_elses_click(world):
    _, thread = await open_game(world, world.alice)
    await world.say(world.alice, thread, "would you take $150?")
    intro = world.drive.bot_messages(thread)[0]
    status = await world.drive.click(world.alice, intro, world.drive.button(intro, "haggle:game:status"))
    assert status.ephemeral and "Status" in text_of(status.replies[-1])
    other = await world.drive.click(world.bob, intro, world.drive.button(intro, "haggle:game:accept"))
    assert "alice's game" in other.texts[-1] and other.ephemeral
    accept = await world.drive.click(world.alice, intro, world.drive.button(intro, "haggle:game:accept"))
    assert accept.response_type == 6  # deferred update: the thread shows the result
    await world.discord.wait_for(lambda: "Deal at" in text_of(world.drive.bot_messages(thread)[-1]))
    (row,) = await world.bot.store.finished_games()
    assert row.outcome == "deal"


async def test_walk_away(world):
    _, thread = await open_game(world, world.alice)
    intro = world.drive.bot_messages(thread)[0]
    await world.drive.click(world.alice, intro, world.drive.button(intro, "haggle:game:walk"))
    await world.discord.wait_for(lambda: "No deal" in text_of(world.drive.bot_messages(thread)[-1]))
    assert any("walks away" in m["content"] for m in world.drive.bot_messages(thread))


async def test_a_restart_mid_game_then_the_next_message_and_click(world):
    _, thread = await open_game(world, world.alice)
    reply = await world.say(world.alice, thread, "would you take $120?")
    assert "yours $120" in reply["content"]
    await world.restart()  # a new HaggleBot on the same database file
    assert world.discord.gateway.live_sessions()[-1].identifies == 1
    reply = await world.say(world.alice, thread, "how about $130?")
    assert "yours $130" in reply["content"]
    intro = world.drive.bot_messages(thread)[0]
    await world.drive.click(world.alice, intro, world.drive.button(intro, "haggle:game:accept"))
    await world.discord.wait_for(lambda: "Deal at" in text_of(world.drive.bot_messages(thread)[-1]))


async def test_a_rate_limited_reply_is_retried_by_discord_py(world):
    _, thread = await open_game(world, world.alice)
    world.discord.rate_limit("POST", rf"/channels/{thread.id}/messages$", retry_after=0.3)
    reply = await world.say(world.alice, thread, "would you take $140?")
    assert "yours $140" in reply["content"] and len(world.discord.rate_limited) == 1


def embedded_model_or_skip():
    import importlib.util

    from bot.errors import HaggleError
    from bot.llm.models import embedded_model_path

    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed")
    try:
        embedded_model_path()
    except HaggleError as exc:
        pytest.skip(str(exc))


@pytest.mark.llm
async def test_a_game_against_the_embedded_model(request, tmp_path):
    """One flow with the real model: the hybrid seller on SmolLM2 (llama.cpp, one thread)."""
    embedded_model_or_skip()
    agents = {**AGENTS, "seller": {"kind": "llm", "role": "seller", "model": "default",
                                   "policy": "hybrid", "max_tokens": 60}}
    models = {"default": {"path": "embedded", "n_threads": 1}, "fake": {"path": "embedded"}}
    async with open_world(request, tmp_path, agents=agents, models=models) as w:
        ix = await w.invoke(w.alice, w.general, "haggle", item=LONGBOARD, agent="seller")
        thread = w.thread_of(ix)
        await w.drive.next_bot_message(thread, after=0)
        reply = await w.say(w.alice, thread, "would you take $120?", timeout=120)
        assert "yours $120" in reply["content"] and "seller's offer $" in reply["content"]


async def test_a_game_in_a_direct_message(world):
    dm = world.discord.dm_channel(world.alice)
    ix = await world.invoke(world.alice, dm, "haggle", item=LONGBOARD, agent="rule-seller")
    assert ix.texts[-1] == "Your game is on, right here." and not world.drive.threads(dm)
    await world.drive.next_bot_message(dm, after=1)
    assert "Long board" in text_of(world.drive.bot_messages(dm)[1])
    reply = await world.say(world.alice, dm, "would you take $120?")
    assert "yours $120" in reply["content"]
    with pytest.raises(CommandNotSynced, match="server-only"):  # Discord does not offer it
        await world.invoke(world.alice, dm, "tournament status")
