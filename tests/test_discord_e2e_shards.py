"""``[bot] shards = 2``: the bot as discord.py's AutoShardedBot, two gateway connections, each
carrying the servers Discord assigns it ((server id >> 22) % 2), through the loopback Discord."""

from __future__ import annotations

import time

from discord_e2e import LONGBOARD, open_world


def two_shards(world):
    """A second server, on the other shard than the first."""
    d = world.discord
    shard = (world.guild.id >> 22) % 2
    while True:
        other = d.add_guild("Second server", owner=world.owner)
        if (other.id >> 22) % 2 != shard:
            break
        del d.guilds[other.id]
        time.sleep(0.002)
    world.other_guild = other
    world.other_general = d.add_channel(other, "general")
    d.add_member(other, world.alice)


async def test_two_shards_serve_a_server_each(request, tmp_path):
    from bot.app import ShardedHaggleBot

    async with open_world(request, tmp_path, bot={"shards": 2}, before_connect=two_shards) as w:
        assert isinstance(w.bot, ShardedHaggleBot) and w.bot.shard_count == 2
        sessions = w.discord.gateway.live_sessions()
        assert sorted(s.shard for s in sessions) == [(0, 2), (1, 2)]
        for guild, channel in ((w.guild, w.general), (w.other_guild, w.other_general)):
            assert w.bot.get_guild(guild.id).shard_id == (guild.id >> 22) % 2
            ix = await w.invoke(w.alice, channel, "haggle", item=LONGBOARD, agent="rule-seller")
            thread = w.thread_of(ix)
            await w.drive.next_bot_message(thread, after=0)
            reply = await w.say(w.alice, thread, "would you take $150?")
            assert "yours $150" in reply["content"]
            intro = w.drive.bot_messages(thread)[0]
            await w.drive.click(w.alice, intro, w.drive.button(intro, "haggle:game:walk"))
        assert {(g.id >> 22) % 2 for g in (w.guild, w.other_guild)} == {0, 1}
