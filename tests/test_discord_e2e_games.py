"""/haggle end to end: the unmodified discord.py client of the real HaggleBot, over HTTP and the
gateway, against the loopback Discord (a real SQLite file, rule agents)."""

from __future__ import annotations

from discord_e2e import LONGBOARD, world  # noqa: F401 - the fixture

from tests.loopback_discord import text_of


async def test_login_and_sync_register_every_command(world):
    names = {c["name"] for c in world.discord.global_commands}
    assert names == {"haggle", "daily", "tournament", "leaderboard", "stats", "models"}
    assert world.discord.gateway.live_sessions()[0].identifies == 1
    assert ("GET", "/users/@me") in world.discord.requests


async def test_haggle_as_buyer_to_a_deal_by_typing(world):
    ix = await world.invoke(world.alice, world.general, "haggle", role="buyer", item=LONGBOARD,
                            agent="rule-seller")
    assert ix.ephemeral and ix.response_type == 5  # deferred privately first
    thread = world.thread_of(ix)
    assert thread.type == 11 and thread.parent_id == world.general.id
    intro = world.drive.bot_messages(thread)[0]
    assert "Long board" in text_of(intro)
    reply = await world.say(world.alice, thread, "would you take $120?")
    assert "yours $120" in reply["content"]
    reply = await world.say(world.alice, thread, "ok, deal at $200")
    assert "Deal" in text_of(world.drive.bot_messages(thread)[-1]) or "deal" in text_of(reply).lower()
