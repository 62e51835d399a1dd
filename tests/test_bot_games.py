"""/haggle end to end through the real Games cog: fake Discord objects, a real SQLite file,
rule agents or the scripted FakeBackend (never a network, never a real model)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import discord
import pytest
from bot_fakes import LONGBOARD, World, invoke, make_config, start_bot

from bot.errors import ModelError
from bot.llm.fake import FakeBackend, Slow


@pytest.fixture
async def world(tmp_path):
    bot = await start_bot(tmp_path)
    yield World(bot)
    await bot.close()


def seller_reply(price: float, act: str = "counter-price") -> str:
    return json.dumps({"act": act, "price": price, "utterance": f"I could let it go for ${price:g}."})


def falling_prices(start: float = 195.0, step: float = 5.0):
    """A scripted seller model: a lower price each call, so no reply repeats an earlier one."""
    state = {"price": start + step}

    def reply(messages):
        state["price"] = max(150.0, state["price"] - step)
        return seller_reply(state["price"])

    return reply


async def test_a_full_game_won_with_the_accept_button(world):
    alice = world.person("alice")
    interaction, thread = await world.haggle(alice, item=LONGBOARD, agent="rule-seller")
    assert interaction.response.deferred == {"ephemeral": True, "thinking": True}  # deferred first
    assert thread is not None and thread.mention in interaction.text
    intro = thread.messages[0]
    assert "Long board" in intro.embed.title and intro.view is not None
    assert {b.custom_id.split(":")[2] for b in intro.view.children} == {"accept", "walk", "status"}

    await world.say(alice, thread, "hi there")
    await world.say(alice, thread, "would you take $120?")
    assert "yours $120" in thread.texts[-1] and "turns left" in thread.texts[-1]
    offer = world.games.live[1].game.agent_offer
    bottom = world.games.live[1].game.scenario.seller_reservation  # drawn for this game

    status = await world.press(alice, thread, "status")
    assert status.sent[-1]["ephemeral"] and status.sent[-1]["embed"].title.startswith("Status")
    await world.press(alice, thread, "accept")

    card = thread.embeds[-1]
    assert card.title == f"Deal at ${offer:,.0f}"
    fields = {f.name: f.value for f in card.fields}
    assert fields["The seller's secret bottom line"] == f"${bottom:,.0f}"  # revealed at the end
    surplus = next(v for k, v in fields.items() if k.startswith("Your surplus"))
    assert f"${offer - bottom:,.0f} was left on the table" in surplus
    assert intro.view is None  # the buttons are gone
    (row,) = await world.bot.store.finished_games()
    assert row.outcome == "deal" and row.deal_price == offer and row.player_id == alice.id
    assert row.metrics["buyer_surplus_share"] == pytest.approx((200 - offer) / (200 - bottom))
    assert row.scenario["seller_reservation"] == bottom  # the game's record keeps its limit
    assert world.games.live == {} and world.games.places == {}


async def test_walking_away_ends_without_a_deal(world):
    bob = world.person("bob")
    _, thread = await world.haggle(bob, item=LONGBOARD, agent="rule-seller")
    await world.say(bob, thread, "would you take 90?")
    await world.press(bob, thread, "walk")
    assert thread.texts[-1] == "**bob** walks away."
    assert thread.embeds[-1].title == "No deal: you walked away"
    (row,) = await world.bot.store.finished_games()
    assert row.outcome == "quit" and row.deal_price is None


async def test_a_deal_typed_in_the_chat_closes_at_the_bots_offer(world):
    carol = world.person("carol")
    _, thread = await world.haggle(carol, item=LONGBOARD, agent="rule-seller")
    await world.say(carol, thread, "could you do 150?")
    offer = world.games.live[1].game.agent_offer
    await world.say(carol, thread, "ok, deal")
    assert thread.embeds[-1].title == f"Deal at ${offer:,.0f}"


async def test_an_idle_game_times_out(world):
    dave = world.person("dave")
    _, thread = await world.haggle(dave, item=LONGBOARD, agent="rule-seller")
    await world.say(dave, thread, "hello")
    assert await world.games.expire_idle() == []  # not idle yet
    later = datetime.now(UTC) + timedelta(seconds=601)
    assert await world.games.expire_idle(now=later) == [1]
    assert "no message for 10 minutes" in thread.texts[-1]
    assert thread.embeds[-1].title == "No deal: the game timed out"
    (row,) = await world.bot.store.finished_games()
    assert row.outcome == "timeout"


async def test_other_people_in_the_thread_are_ignored(world):
    erin, mallory = world.person("erin"), world.person("mallory")
    _, thread = await world.haggle(erin, item=LONGBOARD, agent="rule-seller")
    sent = len(thread.messages)
    await world.say(mallory, thread, "I'll take it for $1!")
    await world.say(world.person("some bot", bot=True), thread, "deal")
    assert len(thread.messages) == sent
    assert world.games.live[1].game.negotiation.turns == []


async def test_bad_input_gets_short_replies_and_counts_no_turn(world):
    fay = world.person("fay")
    _, thread = await world.haggle(fay, item=LONGBOARD, agent="rule-seller")
    game = world.games.live[1].game

    await world.say(fay, thread, "x" * 4000)
    assert "4,000 characters" in thread.texts[-1] and "under 1,500" in thread.texts[-1]
    await world.say(fay, thread, "$1,000,000")
    assert "looks like a typo" in thread.texts[-1]
    await world.say(fay, thread, "<@123456789012345678>")  # a mention alone: no words, no price
    assert "I only read text" in thread.texts[-1]
    await world.say(fay, thread, "deal")  # nothing on the table yet
    assert "no offer on the table" in thread.texts[-1].lower()
    assert game.negotiation.turns == [] and all(m.reference for m in thread.messages[1:])

    await world.say(fay, thread, "does it have scratches?")  # no price: a question is a move
    assert len(game.negotiation.turns) == 2
    await world.say(fay, thread, "I'd pay $100, maybe $110")  # several prices: one is read
    assert game.human_offer in (100, 110) and f"yours ${game.human_offer:,.0f}" in thread.texts[-1]
    row = await world.bot.store.game(1)
    assert row.status == "active" and len(row.state["turns"]) == 4  # saved after each exchange


async def test_one_running_game_per_person_per_server(world):
    gus = world.person("gus")
    _, first = await world.haggle(gus, item=LONGBOARD, agent="rule-seller")
    interaction, second = await world.haggle(gus)
    assert second is None and first.mention in interaction.text
    await world.press(gus, first, "walk")
    _, third = await world.haggle(gus)
    assert third is not None


async def test_buttons_answer_only_the_player(world):
    hal, ivy = world.person("hal"), world.person("ivy")
    _, thread = await world.haggle(hal, item=LONGBOARD, agent="rule-seller")
    click = await world.press(ivy, thread, "walk")
    assert "hal's game" in click.text and click.sent[-1]["ephemeral"]
    assert 1 in world.games.live and not world.games.live[1].game.done


async def test_a_deleted_thread_abandons_the_game(world):
    jo = world.person("jo")
    _, thread = await world.haggle(jo, item=LONGBOARD, agent="rule-seller")
    await world.games.on_raw_thread_delete(SimpleNamespace(thread_id=thread.id))
    (row,) = await world.bot.store.finished_games()
    assert row.outcome == "abandoned"

    _, thread = await world.haggle(jo, item=LONGBOARD, agent="rule-seller")
    thread.deleted = True  # deleted while we were not looking: the next post finds out
    await world.say(jo, thread, "would you take 150?")
    rows = await world.bot.store.finished_games()
    assert [r.outcome for r in rows] == ["abandoned", "abandoned"]


async def test_missing_permissions_are_explained(world):
    kim = world.person("kim")
    no_threads = discord.Permissions.all()
    no_threads.create_public_threads = False
    interaction = world.interaction(kim, app_permissions=no_threads)
    await invoke(world.games.haggle, interaction)
    assert "Create Public Threads" in interaction.text and "ask a server admin" in interaction.text.lower()

    world.channel.forbid_threads = True  # the permission check passed, Discord still refuses
    interaction, thread = await world.haggle(kim)
    assert thread is None and "can't open a thread" in interaction.text
    assert await world.bot.store.active_game_of(kim.id, world.guild.id) is None

    world.channel.forbid_threads = False
    original = world.channel.create_thread

    async def mute_thread(**kwargs):  # the thread opens, but posting in it is refused
        thread = await original(**kwargs)
        thread.forbid_send = True
        return thread

    world.channel.create_thread = mute_thread
    interaction, thread = await world.haggle(kim)
    assert "couldn't post in the game's thread" in interaction.text and thread.deleted
    assert await world.bot.store.active_game_of(kim.id, world.guild.id) is None
    (row,) = await world.bot.store.finished_games()
    assert row.outcome == "abandoned"


async def test_haggle_cooldown_per_person(tmp_path):
    bot = await start_bot(tmp_path, make_config(bot={"haggle_cooldown_s": 20.0}))
    try:
        world = World(bot)
        lee, max_ = world.person("lee"), world.person("max")
        t0 = datetime.now(UTC)
        first = world.interaction(lee, created_at=t0)
        await invoke(world.games.haggle, first, item=LONGBOARD, agent="rule-seller")
        assert "ready" in first.text
        again = world.interaction(lee, created_at=t0 + timedelta(seconds=5))
        await invoke(world.games.haggle, again)
        assert "Slow down" in again.text and "15 s" in again.text
        assert again.response.deferred is None  # refused before any work
        other = world.interaction(max_, created_at=t0 + timedelta(seconds=5))
        await invoke(world.games.haggle, other, item=LONGBOARD, agent="rule-seller")
        assert "ready" in other.text  # cooldowns are per person
        later = world.interaction(lee, created_at=t0 + timedelta(seconds=21))
        await invoke(world.games.haggle, later)
        assert "Slow down" not in later.text and "already have a game" in later.text
    finally:
        await bot.close()


async def test_unknown_item_and_agent_are_explained(world):
    nia = world.person("nia")
    interaction, _ = await world.haggle(nia, item="no-such-item")
    assert "No item matches" in interaction.text
    interaction, _ = await world.haggle(nia, agent="nobody")
    assert "no agent called 'nobody'" in interaction.text
    interaction, _ = await world.haggle(nia, agent="rule-buyer")  # a buyer cannot sell
    assert "cannot play the seller" in interaction.text


async def test_autocomplete_offers_items_and_fitting_agents(world):
    interaction = world.interaction(world.person("oz"), namespace={"role": "seller"})
    items = await world.games._item_choices(interaction, "custom bilt")
    assert LONGBOARD in [c.value for c in items]
    assert all("Long board custom bilt" in c.name for c in items)
    assert (await world.games._item_choices(interaction, ""))[0].value == "random"
    agents = await world.games._agent_choices(interaction, "")
    assert {c.value for c in agents} == {"rule", "rule-buyer", "llm-buyer"}  # the bot buys


async def test_personality_changes_a_rule_agents_pace(world, monkeypatch):
    # Each game draws its private limit from a random seed; the same seed for both games makes
    # the personality the only difference (with two draws the limits could reverse the order).
    import secrets
    monkeypatch.setattr(secrets, "randbelow", lambda n: 12345 % n)
    live_offers = {}
    for personality in ("aggressive", "passive"):
        person = world.person(personality)
        _, thread = await world.haggle(person, item=LONGBOARD, agent="rule-seller",
                                       personality=personality)
        await world.say(person, thread, "hi")
        await world.say(person, thread, "would you take 120?")
        game_id = world.games.places[thread.id]
        live_offers[personality] = world.games.live[game_id].game.agent_offer
    assert live_offers["passive"] < live_offers["aggressive"]


async def test_seller_role_game_where_the_bot_buys(world):
    pat = world.person("pat")
    _, thread = await world.haggle(pat, role="seller", item=LONGBOARD, agent="rule-buyer")
    await world.say(pat, thread, "it's yours for $200")
    assert "buyer's offer" in thread.texts[-1]
    await world.press(pat, thread, "accept")
    card = thread.embeds[-1]
    assert card.title.startswith("Deal at")
    assert {f.name for f in card.fields} >= {"The buyer's secret ceiling"}


async def test_dm_games_run_in_the_dm_itself(world):
    from bot_fakes import FakeChannel

    quinn = world.person("quinn")
    dm = FakeChannel(None, name="dm", type=discord.ChannelType.private)
    interaction = world.interaction(quinn, dm)
    await invoke(world.games.haggle, interaction, item=LONGBOARD, agent="rule-seller")
    assert "right here" in interaction.text and dm.messages[0].embed is not None
    await world.say(quinn, dm, "would you take 130?")
    assert "yours $130" in dm.texts[-1]
    row = await world.bot.store.active_game_of(quinn.id, None)
    assert row is not None and row.thread_id is None and row.channel_id == dm.id


# --------------------------------------------------------------------------- model-backed games


async def llm_world(tmp_path, backend, **bot_settings):
    cfg = make_config(bot=bot_settings or None)
    bot = await start_bot(tmp_path, cfg, backend_factory=lambda spec: backend)
    return World(bot)


async def test_queue_positions_are_shown_and_everyone_is_answered(tmp_path):
    import asyncio

    backend = FakeBackend(default=Slow(falling_prices(), 0.3))
    world = await llm_world(tmp_path, backend, model_slots=1, queue_size=5)
    try:
        people = [world.person(f"p{i}") for i in range(3)]
        threads = []
        for person in people:
            _, thread = await world.haggle(person, item=LONGBOARD, agent="llm-seller")
            threads.append(thread)
        await asyncio.gather(*(world.say(p, t, "would you take $120?")
                               for p, t in zip(people, threads, strict=False)))
        notices = [m for t in threads for m in t.messages if "in line" in m.content]
        assert sorted(m.content.split("You're ")[1].split(" ")[0] for m in notices) == ["1st", "2nd"]
        assert all(m.deleted for m in notices)  # removed once the person's turn came
        for thread in threads:
            assert "I could let it go for" in thread.texts[-1]
        assert len(backend.calls) == 3
    finally:
        await world.bot.close()


async def test_a_full_queue_says_so_and_loses_nothing(tmp_path):
    import asyncio

    backend = FakeBackend(default=Slow(falling_prices(), 0.3))
    world = await llm_world(tmp_path, backend, model_slots=1, queue_size=1)
    try:
        people = [world.person(f"q{i}") for i in range(3)]
        threads = [(await world.haggle(p, item=LONGBOARD, agent="llm-seller"))[1] for p in people]
        await asyncio.gather(*(world.say(p, t, "would you take $120?")
                               for p, t in zip(people, threads, strict=False)))
        busy = [t for t in threads if any("model is busy" in x for x in t.texts)]
        assert len(busy) == 1
        (refused,) = busy
        game_id = world.games.places[refused.id]
        assert world.games.live[game_id].game.negotiation.turns == []  # not counted
        assert (await world.bot.store.game(game_id)).status == "active"  # and not lost
        await world.say(people[threads.index(refused)], refused, "would you take $120?")
        assert "I could let it go for" in refused.texts[-1]
    finally:
        await world.bot.close()


async def test_a_model_error_plays_a_recorded_fallback_turn(tmp_path):
    backend = FakeBackend([ModelError("HTTP 500 from the model server")],
                          default=falling_prices())
    world = await llm_world(tmp_path, backend)
    try:
        rita = world.person("rita")
        _, thread = await world.haggle(rita, item=LONGBOARD, agent="llm-seller")
        await world.say(rita, thread, "would you take $120?")
        assert "the model stumbled" in thread.texts[-1]
        row = await world.bot.store.game(1)
        assert row.state["turns"][-1]["fallback"] is True
        await world.say(rita, thread, "how about $130?")
        assert "I could let it go for" in thread.texts[-1]
    finally:
        await world.bot.close()


async def test_a_model_timeout_takes_the_move_back(tmp_path):
    backend = FakeBackend([Slow(seller_reply(190), 0.6)], default=falling_prices())
    cfg = make_config(negotiation={"turn_timeout_s": 0.2})
    bot = await start_bot(tmp_path, cfg, backend_factory=lambda spec: backend)
    world = World(bot)
    try:
        sam = world.person("sam")
        _, thread = await world.haggle(sam, item=LONGBOARD, agent="llm-seller")
        await world.say(sam, thread, "would you take $120?")
        assert "couldn't answer that" in thread.texts[-1] and "wasn't counted" in thread.texts[-1]
        game = world.games.live[1].game
        assert game.negotiation.turns == [] and not game.done
        assert (await bot.store.game(1)).state["turns"] == []
        await world.say(sam, thread, "would you take $120?")
        assert len(game.negotiation.turns) == 2 and "I could let it go for" in thread.texts[-1]
    finally:
        await bot.close()


async def test_a_failed_opening_move_is_retried_on_the_next_message(tmp_path):
    opening = json.dumps({"act": "init-price", "price": 120, "utterance": "Would you take $120?"})
    backend = FakeBackend([Slow(opening, 0.6), opening])
    cfg = make_config(negotiation={"turn_timeout_s": 0.2})
    bot = await start_bot(tmp_path, cfg, backend_factory=lambda spec: backend)
    world = World(bot)
    try:
        tia = world.person("tia")  # she sells; the bot buys and speaks first
        _, thread = await world.haggle(tia, role="seller", item=LONGBOARD, agent="llm-buyer")
        assert "couldn't make my move" in thread.texts[-1]
        game = world.games.live[1].game
        assert game.negotiation.turns == [] and not game.done
        await world.say(tia, thread, "hello?")
        assert "Would you take $120?" in "\n".join(thread.texts[-2:])
        assert [t.role.value for t in game.negotiation.turns][:2] == ["buyer", "seller"]
    finally:
        await bot.close()


# --------------------------------------------------------------------------- restarts


async def test_a_game_resumes_after_a_restart_from_the_sqlite_file(tmp_path):
    db = tmp_path / "haggle.db"
    bot = await start_bot(tmp_path, db=db)
    world = World(bot)
    uma = world.person("uma")
    _, thread = await world.haggle(uma, item=LONGBOARD, agent="rule-seller")
    await world.say(uma, thread, "hi")
    await world.say(uma, thread, "would you take $120?")
    offer = world.games.live[1].game.agent_offer
    await bot.close()  # the process goes away; only the SQLite file remains

    bot = await start_bot(tmp_path, db=db)
    try:
        from bot.cogs.games import GameButton

        world.bot = bot
        bot.get_channel = world.get_channel
        assert GameButton in bot._connection._view_store._dynamic_items.values()
        assert bot.get_cog("Games").places == {thread.id: 1} and bot.get_cog("Games").live == {}
        await world.say(uma, thread, "would you take $130?")  # the old thread, a new process
        game = world.games.live[1].game
        assert len(game.negotiation.turns) == 6 and game.agent_offer <= offer
        await world.press(uma, thread, "accept")  # a button posted before the restart
        assert thread.embeds[-1].title.startswith("Deal at")
        (row,) = await bot.store.finished_games()
        assert row.outcome == "deal" and len(row.state["turns"]) == 7
    finally:
        await bot.close()


async def test_a_game_idle_across_a_restart_still_times_out(tmp_path):
    db = tmp_path / "haggle.db"
    bot = await start_bot(tmp_path, db=db)
    world = World(bot)
    vic = world.person("vic")
    _, thread = await world.haggle(vic, item=LONGBOARD, agent="rule-seller")
    await bot.close()

    bot = await start_bot(tmp_path, db=db)
    try:
        world.bot = bot
        bot.get_channel = world.get_channel
        later = datetime.now(UTC) + timedelta(hours=1)
        assert await bot.get_cog("Games").expire_idle(now=later) == [1]
        assert thread.embeds[-1].title == "No deal: the game timed out"
    finally:
        await bot.close()


# --------------------------------------------------------------------------- our own bugs


async def test_a_bug_in_a_command_gets_an_incident_id_not_a_traceback(world, monkeypatch, caplog):
    async def broken(name):
        raise KeyError("scenario cache")

    monkeypatch.setattr(world.games, "scenarios", broken)
    interaction, _ = await world.haggle(world.person("wes"))
    assert "Something went wrong on my side (incident `" in interaction.text
    assert "Traceback" not in interaction.text and "KeyError" not in interaction.text
    assert any("incident" in r.message and r.exc_info for r in caplog.records)


async def test_a_bug_while_handling_a_message_is_answered_and_the_game_kept(world, monkeypatch):
    xan = world.person("xan")
    _, thread = await world.haggle(xan, item=LONGBOARD, agent="rule-seller")

    async def broken(*args, **kwargs):
        raise RuntimeError("oops")

    monkeypatch.setattr(world.games, "_agent_turn", broken)
    await world.say(xan, thread, "would you take $150?")
    assert "Something went wrong on my side (incident `" in thread.texts[-1]
    assert "Your game is saved" in thread.texts[-1]
    monkeypatch.undo()
    await world.say(xan, thread, "would you take $150?")
    assert "yours $150" in thread.texts[-1]


async def test_a_batched_model_gives_each_game_its_own_seat_freed_when_the_game_ends(tmp_path):
    """On a llamacpp-batched model the line has n_slots places and a game keeps one backend
    (its sequence) between turns; when the game ends that backend is closed (KV removed)."""
    from dataclasses import replace

    from bot.llm.models import ModelSpec

    made: list[FakeBackend] = []

    def factory(spec):
        made.append(FakeBackend(default=falling_prices()))
        return made[-1]

    cfg = make_config(bot={"model_slots": 1})
    cfg = replace(cfg, models={"fake": ModelSpec(name="fake", backend="llamacpp-batched",
                                                 n_slots=5)})
    bot = await start_bot(tmp_path, cfg, backend_factory=factory)
    world = World(bot)
    try:
        assert bot.queues.get("fake").slots == 5
        ann, ben = world.person("ann"), world.person("ben")
        _, first = await world.haggle(ann, item=LONGBOARD, agent="llm-seller")
        _, second = await world.haggle(ben, item=LONGBOARD, agent="llm-seller")
        await world.say(ann, first, "would you take $120?")
        await world.say(ann, first, "would you take $125?")
        await world.say(ben, second, "would you take $120?")
        assert len(made) == 2  # one backend per game, kept across its turns
        assert (len(made[0].calls), len(made[1].calls)) == (2, 1)
        await world.press(ann, first, "walk")
        assert made[0].closed and not made[1].closed
        await world.say(ben, second, "would you take $125?")
        assert len(made) == 2 and len(made[1].calls) == 2
    finally:
        await bot.close()
