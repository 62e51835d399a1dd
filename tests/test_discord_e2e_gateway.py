"""Gateway faults the real HaggleBot must survive, played by the loopback Discord: op 7
(reconnect, then RESUME with the replay of what it missed), a dropped connection, op 9 (invalid
session: IDENTIFY again), and the closes 4004 (authentication failed) and 4014 (the Message
Content intent is not allowed), which `haggle bot` must explain instead of a traceback."""

from __future__ import annotations

import asyncio

import pytest
from discord_e2e import LONGBOARD

from bot.errors import ConfigError


async def game_thread(world):
    ix = await world.invoke(world.alice, world.general, "haggle", item=LONGBOARD, agent="rule-seller")
    thread = world.thread_of(ix)
    await world.drive.next_bot_message(thread, after=0)
    return thread


async def test_op7_reconnect_resumes_and_replays_what_was_missed(world):
    thread = await game_thread(world)
    gateway = world.discord.gateway
    (session,) = gateway.live_sessions()
    before = len(world.drive.bot_messages(thread))
    await gateway.reconnect(session)
    await world.drive.say(world.alice, thread, "would you take $120?")  # while reconnecting
    reply = await world.drive.next_bot_message(thread, after=before)
    assert "yours $120" in reply["content"]
    await world.discord.wait_for(lambda: session.resumes == 1)
    assert gateway.live_sessions() == [session]  # resumed, not a new session


async def test_a_dropped_connection_resumes(world):
    thread = await game_thread(world)
    gateway = world.discord.gateway
    (session,) = gateway.live_sessions()
    await gateway.drop(session)
    await world.discord.wait_for(lambda: session.resumes == 1 and session.socket is not None)
    reply = await world.say(world.alice, thread, "would you take $125?")
    assert "yours $125" in reply["content"]


async def test_op9_invalid_session_identifies_again_and_keeps_working(world):
    thread = await game_thread(world)
    gateway = world.discord.gateway
    (old,) = gateway.live_sessions()
    await gateway.invalidate(old)
    # discord.py waits 5 s before a non-initial IDENTIFY (its before_identify_hook)
    await world.discord.wait_for(lambda: gateway.live_sessions() and gateway.live_sessions()[0] is not old
                                 and world.bot.is_ready(), timeout=15)
    await asyncio.sleep(0.3)  # the new session's READY and GUILD_CREATE reach the cache
    reply = await world.say(world.alice, thread, "would you take $130?")
    assert "yours $130" in reply["content"]


async def serve(world, token=None):
    from bot.commands.bot import _serve

    await world.disconnect()
    world.discord.install()
    await asyncio.wait_for(_serve(world.cfg, token or world.discord.token, world.db), 20)


async def test_4014_disallowed_message_content_intent_is_explained(world):
    world.discord.gateway.allowed_intents = 0
    with pytest.raises(ConfigError, match="Message Content intent"):
        await serve(world)


async def test_4004_authentication_failed_is_explained(world):
    world.discord.gateway.next_close = 4004
    with pytest.raises(ConfigError, match="refused the bot token"):
        await serve(world)


async def test_a_bad_token_at_login_is_explained(world):
    with pytest.raises(ConfigError, match="refused the bot token"):
        await serve(world, token="revoked")
    world.discord.take(0)  # the 401 the bad token got
