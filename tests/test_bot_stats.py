"""/leaderboard, /stats and /models through the real cogs."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import pytest
from bot_fakes import LONGBOARD, World, invoke, start_bot


@pytest.fixture
async def world(tmp_path):
    bot = await start_bot(tmp_path)
    yield World(bot)
    await bot.close()


async def deal(world, user, offers):
    """Play a game against rule-seller: say hello, make ``offers``, then press Accept."""
    _, thread = await world.haggle(user, item=LONGBOARD, agent="rule-seller")
    await world.say(user, thread, "hello")
    for offer in offers:
        await world.say(user, thread, f"would you take ${offer}?")
    await world.press(user, thread, "accept")
    return thread


async def test_people_leaderboard_ranks_by_surplus_kept(world):
    tough, soft, quitter = world.person("tough"), world.person("soft"), world.person("quitter")
    await deal(world, tough, [100, 110, 120, 130])
    await deal(world, soft, [])
    _, thread = await world.haggle(quitter, item=LONGBOARD, agent="rule-seller")
    await world.press(quitter, thread, "walk")
    idle = world.person("idle")  # opened a game and never made a move: not on the board
    await world.haggle(idle, item=LONGBOARD, agent="rule-seller")
    await world.games.expire_idle(now=datetime.now(UTC) + timedelta(hours=1))

    stats = world.bot.get_cog("Stats")
    interaction = world.interaction(soft)
    await invoke(stats.leaderboard, interaction)
    embed = interaction.sent[-1]["embed"]
    lines = embed.description.splitlines()
    assert embed.title == "Best hagglers, this server" and not interaction.sent[-1]["ephemeral"]
    assert lines[0].startswith("**1.** tough:") and "1/1 deals" in lines[0]
    assert lines[1].startswith("**2.** soft: 0% of the zone kept")  # paid the asking price
    assert lines[2].startswith("**3.** quitter: – of the zone kept, 0/1 deals")
    assert len(lines) == 3

    everywhere = world.interaction(soft)
    await invoke(stats.leaderboard, everywhere, scope="global")
    assert everywhere.sent[-1]["embed"].title == "Best hagglers, everywhere"


async def test_agent_leaderboard_comes_from_this_servers_tournaments(world, monkeypatch):
    stats = world.bot.get_cog("Stats")
    empty = world.interaction(world.person("x"))
    await invoke(stats.leaderboard, empty, board="agents")
    assert "No tournaments yet" in empty.sent[-1]["embed"].description

    monkeypatch.setattr(sys.modules["bot.cogs.tournaments"], "_report_files", lambda d, r: None)
    boss = world.person("boss", manage_guild=True)
    tournaments = world.bot.get_cog("Tournaments")
    await invoke(tournaments.run, world.interaction(boss), agents="rule-buyer,rule-seller",
                 scenarios=2)
    await tournaments.jobs[world.guild.id].task
    board = world.interaction(boss)
    await invoke(stats.leaderboard, board, board="agents")
    text = board.sent[-1]["embed"].description
    assert "`rule-buyer`" in text and "`rule-seller`" in text and "(2 negotiations)" in text


async def test_stats_of_a_member(world):
    ivy = world.person("ivy")
    await deal(world, ivy, [120])
    _, thread = await world.haggle(ivy, item=LONGBOARD, agent="rule-seller")
    await world.press(ivy, thread, "walk")
    stats = world.bot.get_cog("Stats")
    asker = world.person("asker")
    interaction = world.interaction(asker)
    await invoke(stats.stats, interaction, member=ivy)
    embed = interaction.sent[-1]["embed"]
    fields = {f.name: f.value for f in embed.fields}
    assert embed.title == "ivy's haggling record" and fields["Games"] == "2"
    assert fields["Deals"] == "1 (50%)"
    latest = fields["Latest games"].splitlines()
    assert latest[0].endswith("as buyer: quit") and "deal at" in latest[1]
    mine = world.interaction(asker)
    await invoke(stats.stats, mine)
    assert "start one with /haggle" in mine.sent[-1]["embed"].description


async def test_models_list_and_the_server_default_agent(world):
    models = world.bot.get_cog("Models")
    listing = world.interaction(world.person("viewer"))
    await invoke(models.list_models, listing)
    embed = listing.sent[-1]["embed"]
    assert "`rule-seller`" in embed.description and "`llm-seller`" in embed.description
    assert "default buyer" in embed.description and "default seller" in embed.description
    (model,) = [f for f in embed.fields if f.name == "Model fake"]
    assert model.value == "`SmolLM2-135M-Instruct.Q4_1.gguf` (the embedded model)\nidle, 1 slot(s)"

    pleb = world.person("pleb")
    refused = world.interaction(pleb)
    await invoke(models.set_default, refused, agent="rule-seller")
    assert "Manage Server" in refused.text
    boss = world.person("boss", manage_guild=True)
    unknown = world.interaction(boss)
    await invoke(models.set_default, unknown, agent="nobody")
    assert "no agent called 'nobody'" in unknown.text
    done = world.interaction(boss)
    await invoke(models.set_default, done, agent="rule")
    assert "`rule` is this server's default agent" in done.text

    _, thread = await world.haggle(pleb, item=LONGBOARD)  # no agent named: the server's default
    assert "`rule`" in thread.messages[0].embed.fields[3].value
    reset = world.interaction(boss)
    await invoke(models.set_default, reset, agent="reset")
    assert (await world.bot.store.guild_settings(world.guild.id)).default_agent is None
    choices = await models._agent_choices(reset, "rule-")
    assert [c.value for c in choices] == ["rule-seller", "rule-buyer"]


async def test_owner_sync_command_copies_and_syncs_to_the_server(world, monkeypatch):
    from types import SimpleNamespace

    admin = world.bot.get_cog("Admin")
    synced, replies = [], []

    async def fake_sync(*, guild=None):  # Discord's side of the sync
        synced.append(guild)
        return [SimpleNamespace(name=c.name) for c in world.bot.tree.get_commands(guild=guild)]

    async def reply(text, **kwargs):
        replies.append(text)

    monkeypatch.setattr(world.bot.tree, "sync", fake_sync)
    ctx = SimpleNamespace(guild=world.guild, reply=reply)
    await admin.sync.callback(admin, ctx, "here")
    assert synced == [world.guild] and replies[-1].startswith("Synced 6 command(s) to this server")
    await admin.sync.callback(admin, ctx, "global")
    assert synced[-1] is None and "globally" in replies[-1]
    await admin.sync.callback(admin, ctx, "clear")
    assert replies[-1].startswith("Synced 0 command(s) here")


async def test_the_people_leaderboard_loads_no_game(world, monkeypatch):
    # Ranked inside SQLite: however many games a server has, none is loaded and parsed on the
    # event loop for the board.
    await deal(world, world.person("tough"), [100, 110])
    from bot.store import Store

    def no_loading(row):
        raise AssertionError("the leaderboard loaded a whole game")
    monkeypatch.setattr(Store, "_game", staticmethod(no_loading))
    interaction = world.interaction(world.person("asker"))
    await invoke(world.bot.get_cog("Stats").leaderboard, interaction, scope="global")
    assert interaction.sent[-1]["embed"].description.startswith("**1.** tough:")
