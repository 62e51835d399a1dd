"""Bounds across the whole bot process (issue 17, item 1): llama.cpp instances capped for games
and tournaments together, tournaments on the games' model slots, per-person rate limits, and
the intro footer and thread names escaped. Each test fails without its fix (docs/robustness.md).

Real cogs, fake Discord objects (tests/bot_fakes.py), a real SQLite file, scripted backends.
"""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from bot_fakes import LONGBOARD, FakeChannel, FakeGuild, World, invoke, make_config, start_bot

from bot.errors import ConfigError, ModelCapacity
from bot.llm.fake import FakeBackend, Slow


def seller_reply(messages=None, price: float = 180.0) -> str:
    return json.dumps({"act": "counter-price", "price": price,
                       "utterance": f"I could let it go for ${price:g}."})


class CountingFactory:
    """A backend factory that counts the instances alive (made and not yet closed)."""

    def __init__(self, reply=seller_reply, seconds: float = 0.0) -> None:
        self.alive = 0
        self.peak = 0
        self.made = 0
        self._reply = reply
        self._seconds = seconds

    def __call__(self, spec):
        backend = FakeBackend(default=Slow(self._reply, self._seconds) if self._seconds
                              else self._reply)
        self.alive += 1
        self.made += 1
        self.peak = max(self.peak, self.alive)
        close = backend.aclose

        async def aclose() -> None:
            self.alive -= 1
            await close()

        backend.aclose = aclose
        return backend


async def until(condition, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- model instances


async def test_the_pool_caps_instances_closing_idle_ones_first():
    from bot.config import parse_config
    from bot.llm.pool import ModelPool

    cfg = parse_config({"models": {"a": {"path": "embedded"}, "b": {"path": "embedded"}}}, None)
    made = CountingFactory()
    pool = ModelPool(cfg.models, factory=made, max_instances=2)
    await pool.acquire("a", "s0")
    await pool.acquire("a", "s1")
    with pytest.raises(ModelCapacity, match="max_model_instances"):
        await pool.acquire("b", "s0")  # both leased: no room, said so
    assert pool.refused == 1 and made.alive == 2
    pool.unlease("a", "s0")
    await pool.acquire("b", "s0")  # the idle one is closed to make room
    assert made.alive == 2 and pool.instances == 2 and pool.peak == 2
    with pytest.raises(ModelCapacity):
        pool.backend("a", "s2")  # the plain call refuses past the cap too
    await pool.aclose()
    assert made.alive == 0


async def test_tournaments_from_discord_add_no_model_instances(tmp_path, monkeypatch):
    """Two /tournament run with 4 workers each, while a person plays: every model call runs
    on the bot's one slot of the model, so one instance in all (each tournament built
    workers + showcase instances of its own before)."""
    made = CountingFactory(seconds=0.01)
    cfg = make_config(bot={"max_running_tournaments": 2, "model_slots": 1, "queue_size": 5,
                           "max_model_instances": 1})
    bot = await start_bot(tmp_path, cfg, backend_factory=made)
    monkeypatch.setattr(sys.modules["bot.cogs.tournaments"], "_report_files",
                        lambda data, report: None)
    world = World(bot)
    try:
        boss, other = world.person("boss", manage_guild=True), world.person("o", manage_guild=True)
        elsewhere = FakeChannel(FakeGuild("Another server"))
        tournaments = bot.get_cog("Tournaments")
        for who, where in ((boss, None), (other, elsewhere)):
            ix = world.interaction(who, where)
            await invoke(tournaments.run, ix, agents="rule-buyer, llm-seller", scenarios=3,
                         workers=4)
            assert "Tournament started" in ix.text
        ann = world.person("ann")
        _, thread = await world.haggle(ann, item=LONGBOARD, agent="llm-seller")
        await world.say(ann, thread, "would you take $120?")  # a person's turn among them
        assert not any("busy" in t for t in thread.texts)
        for job in list(tournaments.jobs.values()):
            await job.task
        assert made.peak == 1 and bot.factory.pool.peak == 1
        assert made.made == 1  # the slot's instance, shared by the games and both tournaments
    finally:
        await bot.close()


async def test_a_turn_past_the_instance_cap_is_told_so_and_works_once_one_is_idle(tmp_path):
    made = CountingFactory(seconds=0.5)
    agents = {"seller-a": {"kind": "llm", "role": "seller", "model": "a", "max_repairs": 0},
              "seller-b": {"kind": "llm", "role": "seller", "model": "b", "max_repairs": 0}}
    cfg = make_config(bot={"max_model_instances": 1, "model_slots": 1}, agents=agents,
                      models={"a": {"path": "embedded"}, "b": {"path": "embedded"}})
    bot = await start_bot(tmp_path, cfg, backend_factory=made)
    world = World(bot)
    try:
        ann, ben = world.person("ann"), world.person("ben")
        _, a_thread = await world.haggle(ann, item=LONGBOARD, agent="seller-a")
        _, b_thread = await world.haggle(ben, item=LONGBOARD, agent="seller-b")
        busy = asyncio.create_task(world.say(ann, a_thread, "would you take $110?"))
        await until(lambda: world.games.live[1].lock.locked() and made.alive == 1)
        await world.say(ben, b_thread, "would you take $120?")
        assert "max_model_instances" in b_thread.texts[-1] and "saved" in b_thread.texts[-1]
        await busy
        await world.say(ben, b_thread, "would you take $120?")  # model a's instance is idle now
        assert "I could let it go" in b_thread.texts[-1]
        assert made.peak == 1
    finally:
        await bot.close()


async def test_people_waiting_go_before_tournament_turns():
    from bot.queues import ModelQueue

    queue = ModelQueue("m", slots=1, capacity=1)
    holder = queue.enter()
    background = [queue.enter(background=True) for _ in range(3)]  # not against capacity
    person = queue.enter()
    assert person.position == 1 and background[0].position == 2
    holder.release()
    assert person.position == 0 and all(t.position for t in background)
    person.release()
    assert background[0].position == 0
    for t in background:
        t.release()
    assert queue.busy == 0 and queue.state().background == 0


async def test_tournament_turns_still_move_while_people_keep_waiting():
    from bot.queues import BACKGROUND_EVERY, ModelQueue

    queue = ModelQueue("m", slots=1, capacity=100)
    holder = queue.enter()
    tournament = queue.enter(background=True)
    people = [queue.enter() for _ in range(2 * BACKGROUND_EVERY)]
    served = []
    for _ in range(BACKGROUND_EVERY + 1):
        holder.release()
        holder = next(t for t in [tournament, *people] if t.slot is not None)
        served.append("t" if holder is tournament else "p")
    assert served == ["p"] * BACKGROUND_EVERY + ["t"]  # one turn in BACKGROUND_EVERY + 1
    holder.release()
    for t in people:
        t.release()


# --------------------------------------------------------------------------- rate limits


async def test_a_person_past_actions_per_minute_is_told_once_across_games_and_servers(tmp_path):
    backend = FakeBackend(default=seller_reply)
    bot = await start_bot(tmp_path, make_config(bot={"actions_per_minute": 4}),
                          backend_factory=lambda spec: backend)
    world = World(bot)
    try:
        ann = world.person("ann")
        _, thread = await world.haggle(ann, item=LONGBOARD, agent="llm-seller")  # 1
        await world.say(ann, thread, "would you take $120?")  # 2
        status = await world.press(ann, thread, "status")  # 3 (a button)
        assert "Slow down" not in status.text
        elsewhere = FakeChannel(FakeGuild("Another server"))
        board = world.interaction(ann, elsewhere)
        await invoke(bot.get_cog("Stats").leaderboard, board)  # 4, in another server
        assert "Slow down" not in board.text
        calls = len(backend.calls)
        await world.say(ann, thread, "would you take $125?")
        assert thread.messages[-1].content.startswith("Slow down")
        await world.say(ann, thread, "would you take $126?")
        assert sum(t.startswith("Slow down") for t in thread.texts) == 1  # told once, then quiet
        assert len(backend.calls) == calls  # neither reached the model
        mashed = await world.press(ann, thread, "status")
        assert "Slow down" in mashed.text and mashed.sent[-1].get("ephemeral") is True
        again = world.interaction(ann, elsewhere)
        await invoke(bot.get_cog("Stats").leaderboard, again)
        assert "Slow down" in again.text and again.sent[-1].get("ephemeral") is True
        bob = world.person("bob")  # someone else is not limited by ann
        other = world.interaction(bob, elsewhere)
        await invoke(bot.get_cog("Stats").leaderboard, other)
        assert "Slow down" not in other.text
    finally:
        await bot.close()


async def test_a_person_slowed_down_by_the_rate_limit_is_not_timed_out(tmp_path):
    from datetime import datetime, timedelta

    bot = await start_bot(tmp_path, make_config(bot={"actions_per_minute": 2,
                                                     "inactivity_timeout_s": 60}))
    world = World(bot)
    try:
        ann = world.person("ann")
        _, thread = await world.haggle(ann, item=LONGBOARD, agent="rule-seller")
        await world.say(ann, thread, "would you take $120?")
        saved = datetime.fromisoformat((await bot.store.game(1)).updated_at)
        await world.say(ann, thread, "hello?")  # limited: not played, not saved
        assert thread.texts[-1].startswith("Slow down")
        world.games.seen[1] = saved + timedelta(seconds=50)  # ... as if said 50 s later
        assert await world.games.expire_idle(now=saved + timedelta(seconds=70)) == []
        assert await world.games.expire_idle(now=saved + timedelta(seconds=111)) == [1]
    finally:
        await bot.close()


def test_the_rate_limit_window_slides():
    from bot.ratelimit import RateLimits

    now = [0.0]
    limits = RateLimits(2, clock=lambda: now[0])
    assert limits.hit(1) is None and limits.hit(1) is None
    assert limits.hit(1) == pytest.approx(60.0)
    now[0] = 59.0
    assert limits.hit(1) == pytest.approx(1.0)
    now[0] = 60.0
    assert limits.hit(1) is None  # the first hit left the window
    assert RateLimits(0).hit(1) is None  # 0 = no limit


@pytest.mark.parametrize(("table", "key"), [
    ({"max_model_instances": 0}, "max_model_instances"),
    ({"model_slots": 4, "max_model_instances": 2}, "max_model_instances"),
    ({"actions_per_minute": -1}, "actions_per_minute"),
])
def test_bad_bound_settings_are_refused_naming_the_key(table, key):
    from bot.bot_config import BotConfig

    with pytest.raises(ConfigError, match=rf"bot\.{key}: must"):  # not "unknown key"
        BotConfig.from_table(table, "bot")


# --------------------------------------------------------------------------- escaping


async def test_the_intro_footer_and_the_thread_name_are_escaped(tmp_path):
    bot = await start_bot(tmp_path)
    world = World(bot)
    try:
        mallory = world.person("[admin](https://evil.example) @everyone\n<@123>")
        _, thread = await world.haggle(mallory, item=LONGBOARD, agent="rule-seller")
        footer = thread.embeds[0].footer.text
        for text in (footer, thread.name):
            assert "https://" not in text and "@everyone" not in text and "<@123>" not in text
            assert "\n" not in text and "\\" not in text  # no markdown there: no backslashes
        assert thread.name.startswith("[admin]((link removed)) @\u200beveryone <@\u200b123> haggles")
    finally:
        await bot.close()


def test_item_text_from_the_data_sets_is_escaped_on_the_cards():
    """Listings are other people's words: the soak found a description with a link."""
    from bot.cogs._cards import intro_embed
    from bot.negotiation.scenario import Scenario
    from bot.negotiation.turns import Role

    sc = Scenario(id="x", title="**Bike** [deal](https://evil.example)", listing_price=200,
                  buyer_target=150, seller_target=200, buyer_reservation=190,
                  seller_reservation=140, description="Call now: http://spam.example @everyone")
    card = intro_embed(sc, human_role=Role.BUYER, player="ann", agent="rule-seller", max_turns=10)
    for text in (card.title, card.description):
        assert "://" not in text and "@everyone" not in text


async def test_a_person_refused_by_a_full_model_line_is_not_timed_out(tmp_path):
    """The soak's two timeouts: the person sold to the LLM buyer, which owed its opening, and
    every message met a full model line ("model is busy"): answered, but never saved, so the
    inactivity clock ran on from the restart while the person kept writing."""
    import sqlite3
    from datetime import UTC, datetime, timedelta

    backend = FakeBackend(default=Slow(seller_reply, 1.0))
    bot = await start_bot(tmp_path, make_config(bot={"model_slots": 1, "queue_size": 0,
                                                     "inactivity_timeout_s": 60}),
                          backend_factory=lambda spec: backend)
    world = World(bot)
    try:
        ann, ben = world.person("ann"), world.person("ben")
        _, a_thread = await world.haggle(ann, item=LONGBOARD, agent="llm-seller")
        busy = asyncio.create_task(world.say(ann, a_thread, "would you take $110?"))
        await asyncio.sleep(0.2)  # ann's turn holds the only slot for a second
        _, b_thread = await world.haggle(ben, item=LONGBOARD, role="seller", agent="llm-buyer")
        assert "model is busy" in b_thread.texts[-1]  # the buyer could not open
        # ben's game was last saved 50 s ago, the bot started then too
        games = world.games
        games.started_at -= timedelta(seconds=50)
        old = (datetime.now(UTC) - timedelta(seconds=50)).isoformat(timespec="seconds")
        with sqlite3.connect(tmp_path / "haggle.db") as conn:
            conn.execute("UPDATE games SET updated_at = ? WHERE id = 2", (old,))
        said = datetime.now(UTC)
        await world.say(ben, b_thread, "I'd let it go for $180")
        assert "model is busy" in b_thread.texts[-1]  # refused again: not played, not saved
        assert await games.expire_idle(now=said + timedelta(seconds=30)) == []  # ben is here
        await busy
        assert 2 in await games.expire_idle(now=said + timedelta(seconds=61))  # quiet since
        assert (await bot.store.game(2)).outcome == "timeout"
    finally:
        await bot.close()
