"""The bot under faults and load (issue 17): each test fails without its fix.

Real Games cog, fake Discord objects (tests/bot_fakes.py), a real SQLite file and the scripted
FakeBackend; see docs/robustness.md for what each item was and what the bot does now.
"""

from __future__ import annotations

import asyncio
import json

from bot_fakes import LONGBOARD, World, make_config, start_bot

from bot.llm.fake import FakeBackend, Slow


def seller_reply(price: float) -> str:
    return json.dumps({"act": "counter-price", "price": price,
                       "utterance": f"I could let it go for ${price:g}."})


def falling_prices(start: float = 195.0, step: float = 5.0):
    state = {"price": start + step}

    def reply(messages):
        state["price"] = max(150.0, state["price"] - step)
        return seller_reply(state["price"])

    return reply


async def llm_world(tmp_path, backend, *, negotiation=None, **bot_settings):
    cfg = make_config(bot=bot_settings or None, negotiation=negotiation)
    bot = await start_bot(tmp_path, cfg, backend_factory=lambda spec: backend)
    return World(bot)


async def until(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def two_llm_games(world):
    """ann and ben, each in a game against the LLM seller (one model slot between them)."""
    ann, ben = world.person("ann"), world.person("ben")
    _, a_thread = await world.haggle(ann, item=LONGBOARD, agent="llm-seller")
    _, b_thread = await world.haggle(ben, item=LONGBOARD, agent="llm-seller")
    return ann, a_thread, ben, b_thread


# --------------------------------------------------------------------------- item 6


async def test_a_typed_deal_is_not_refused_by_a_full_model_queue(tmp_path):
    backend = FakeBackend(default=Slow(falling_prices(), 0.4))
    world = await llm_world(tmp_path, backend, model_slots=1, queue_size=0)
    try:
        ann, a_thread, ben, b_thread = await two_llm_games(world)
        await world.say(ben, b_thread, "would you take $120?")
        offer = world.games.live[2].game.agent_offer
        calls = len(backend.calls)
        busy = asyncio.create_task(world.say(ann, a_thread, "would you take $110?"))
        await until(lambda: world.games.live[1].lock.locked())  # ann's turn holds the only slot
        await world.say(ben, b_thread, "deal")
        assert not any("model is busy" in t for t in b_thread.texts)
        assert b_thread.embeds[-1].title == f"Deal at ${offer:,.0f}"
        row = await world.bot.store.game(2)
        assert row.status == "finished" and row.outcome == "deal"
        await busy
        assert len(backend.calls) == calls + 1  # only ann's turn asked the model
    finally:
        await world.bot.close()


async def test_bye_while_the_message_waits_in_line_withdraws_it(tmp_path):
    backend = FakeBackend(default=Slow(falling_prices(), 0.4))
    world = await llm_world(tmp_path, backend, model_slots=1, queue_size=5)
    try:
        ann, a_thread, ben, b_thread = await two_llm_games(world)
        first = asyncio.create_task(world.say(ann, a_thread, "would you take $110?"))
        await until(lambda: world.games.live[1].lock.locked())
        waiting = asyncio.create_task(world.say(ben, b_thread, "would you take $120?"))
        await until(lambda: any("in line" in m.content for m in b_thread.messages))
        await world.say(ben, b_thread, "bye")  # not "one at a time, please"
        assert not any("one at a time" in t for t in b_thread.texts)
        assert b_thread.embeds[-1].title == "No deal: you walked away"
        await asyncio.wait_for(waiting, 2)  # the waiting message ends quietly
        notice = next(m for m in b_thread.messages if "in line" in m.content)
        assert notice.deleted
        await first
        assert len(backend.calls) == 1  # ben's withdrawn message never reached the model
        row = await world.bot.store.game(2)
        assert row.outcome == "quit" and row.state["turns"][-1]["act"] == "quit"
    finally:
        await world.bot.close()


async def test_walk_away_works_while_the_bot_owes_its_opening_move(tmp_path):
    opening = json.dumps({"act": "init-price", "price": 120, "utterance": "Would you take $120?"})
    backend = FakeBackend([Slow(opening, 0.6)], default=opening)
    world = await llm_world(tmp_path, backend, negotiation={"turn_timeout_s": 0.2})
    try:
        tia = world.person("tia")  # she sells; the bot buys, speaks first, and fails to
        _, thread = await world.haggle(tia, role="seller", item=LONGBOARD, agent="llm-buyer")
        assert "couldn't make my move" in thread.texts[-1]
        press = await world.press(tia, thread, "walk")
        assert not any("not your turn" in str(s) for s in press.sent)
        assert thread.texts[-1] == "**tia** walks away."
        assert thread.embeds[-1].title == "No deal: you walked away"
        assert len(backend.calls) == 1  # walking away asked the model nothing
        row = await world.bot.store.game(1)
        assert row.status == "finished" and row.outcome == "quit"
    finally:
        await world.bot.close()


async def test_typed_bye_before_the_opening_move_asks_no_model(tmp_path):
    opening = json.dumps({"act": "init-price", "price": 120, "utterance": "Would you take $120?"})
    backend = FakeBackend([Slow(opening, 0.6)], default=opening)
    world = await llm_world(tmp_path, backend, negotiation={"turn_timeout_s": 0.2})
    try:
        tia = world.person("tia")
        _, thread = await world.haggle(tia, role="seller", item=LONGBOARD, agent="llm-buyer")
        await world.say(tia, thread, "no thanks, bye")
        assert thread.embeds[-1].title == "No deal: you walked away"
        assert len(backend.calls) == 1  # only the failed opening
    finally:
        await world.bot.close()


# --------------------------------------------------------------------------- item 2


async def test_downtime_longer_than_the_timeout_is_not_charged_to_the_player(tmp_path):
    import sqlite3
    from datetime import UTC, datetime, timedelta

    db = tmp_path / "haggle.db"
    bot = await start_bot(tmp_path, db=db)
    world = World(bot)
    vic = world.person("vic")
    _, thread = await world.haggle(vic, item=LONGBOARD, agent="rule-seller")
    await world.say(vic, thread, "would you take $120?")
    await bot.close()
    # the bot stays down for an hour (the timeout is 10 minutes): the game's last save is old
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE games SET updated_at = ?", (hour_ago,))

    bot = await start_bot(tmp_path, db=db)
    try:
        world.bot = bot
        bot.get_channel = world.get_channel
        games = bot.get_cog("Games")
        assert await games.expire_idle() == []  # not ended as vic's timeout
        row = await bot.store.game(1)
        assert row.status == "active"
        (restart,) = row.state["bot"]["restarts"]  # the downtime is recorded
        assert restart["idle_s"] >= 3600
        await world.say(vic, thread, "how about $125?")  # resumes, and keeps the record
        assert (await bot.store.game(1)).state["bot"]["restarts"] == [restart]
        # the clock runs again from the restart: quiet for the whole timeout after it, it ends
        later = games.started_at + timedelta(seconds=bot.settings.inactivity_timeout_s + 60)
        assert await games.expire_idle(now=later) == [1]
        assert (await bot.store.game(1)).outcome == "timeout"
    finally:
        await bot.close()


# --------------------------------------------------------------------------- item 3


async def test_a_failing_final_save_is_retried_and_resolved_by_the_sweep(tmp_path, monkeypatch):
    from datetime import UTC, datetime, timedelta

    from bot.errors import StoreError

    bot = await start_bot(tmp_path)
    world = World(bot)
    monkeypatch.setattr(world.games, "save_retry_pauses_s", (0.0, 0.0), raising=False)
    try:
        wyn = world.person("wyn")
        _, thread = await world.haggle(wyn, item=LONGBOARD, agent="rule-seller")
        real_finish = bot.store.finish_game
        failures = {"left": 3}  # the first sweep's save and both retries fail: the disk is full

        async def flaky_finish(*args, **kwargs):
            if failures["left"]:
                failures["left"] -= 1
                raise StoreError("database or disk is full")
            return await real_finish(*args, **kwargs)

        monkeypatch.setattr(bot.store, "finish_game", flaky_finish)
        games = world.games
        later = datetime.now(UTC) + timedelta(hours=1)
        assert await games.expire_idle(now=later) == []
        pings = [t for t in thread.texts if "so this game is over" in t]
        assert len(pings) == 1 and (await bot.store.game(1)).status == "active"

        failures["left"] = 3  # still failing at the next sweep: nobody is pinged again
        assert await games.expire_idle(now=later) == []
        assert len([t for t in thread.texts if "so this game is over" in t]) == 1

        # the store answers again: /haggle is not locked out, the old game is saved first
        _, second = await world.haggle(wyn, item=LONGBOARD, agent="rule-seller")
        assert second is not None and second is not thread
        row = await bot.store.game(1)
        assert row.status == "finished" and row.outcome == "timeout"
        assert thread.embeds[-1].title == "No deal: the game timed out"
        assert len([t for t in thread.texts if "so this game is over" in t]) == 1
    finally:
        await bot.close()


async def test_the_sweep_saves_an_unsaved_ending_without_a_new_ping(tmp_path, monkeypatch):
    from datetime import UTC, datetime, timedelta

    from bot.errors import StoreError

    bot = await start_bot(tmp_path)
    world = World(bot)
    monkeypatch.setattr(world.games, "save_retry_pauses_s", (0.0,), raising=False)
    try:
        xia = world.person("xia")
        _, thread = await world.haggle(xia, item=LONGBOARD, agent="rule-seller")
        real_finish = bot.store.finish_game
        failures = {"left": 2}

        async def flaky_finish(*args, **kwargs):
            if failures["left"]:
                failures["left"] -= 1
                raise StoreError("database is locked")
            return await real_finish(*args, **kwargs)

        monkeypatch.setattr(bot.store, "finish_game", flaky_finish)
        later = datetime.now(UTC) + timedelta(hours=1)
        assert await world.games.expire_idle(now=later) == []
        assert await world.games.expire_idle(now=later) == [1]  # the next sweep resolves it
        row = await bot.store.game(1)
        assert row.status == "finished" and row.outcome == "timeout"
        assert len([t for t in thread.texts if "so this game is over" in t]) == 1
        assert thread.embeds[-1].title == "No deal: the game timed out"
        assert world.games.live == {}
    finally:
        await bot.close()


# --------------------------------------------------------------------------- item 4


async def test_the_in_line_notice_goes_when_the_turn_starts(tmp_path):
    backend = FakeBackend(default=Slow(falling_prices(), 0.4))
    world = await llm_world(tmp_path, backend, model_slots=1, queue_size=5)
    try:
        ann, a_thread, ben, b_thread = await two_llm_games(world)
        first = asyncio.create_task(world.say(ann, a_thread, "would you take $110?"))
        await until(lambda: world.games.live[1].lock.locked())
        second = asyncio.create_task(world.say(ben, b_thread, "would you take $120?"))
        await until(lambda: any("in line" in m.content for m in b_thread.messages))
        await first
        await until(lambda: len(backend.calls) == 2)  # ben's turn is with the model now
        notice = next(m for m in b_thread.messages if "in line" in m.content)
        assert notice.deleted  # not left up while the model answers
        await second
    finally:
        await world.bot.close()


async def test_close_lets_a_turn_under_way_finish_and_save(tmp_path):
    db = tmp_path / "haggle.db"
    backend = FakeBackend(default=Slow(falling_prices(), 0.4))
    cfg = make_config(bot={"model_slots": 1, "queue_size": 5})
    bot = await start_bot(tmp_path, cfg, db=db, backend_factory=lambda spec: backend)
    world = World(bot)
    ann, a_thread, ben, b_thread = await two_llm_games(world)
    first = asyncio.create_task(world.say(ann, a_thread, "would you take $110?"))
    await until(lambda: len(backend.calls) == 1)  # ann's turn is with the model
    second = asyncio.create_task(world.say(ben, b_thread, "would you take $120?"))
    await until(lambda: any("in line" in m.content for m in b_thread.messages))
    await bot.close()  # the process is told to stop mid-turn
    await asyncio.wait_for(asyncio.gather(first, second), 2)
    assert not any("went wrong" in t for t in a_thread.texts + b_thread.texts)
    assert "I could let it go for" in a_thread.texts[-1]  # ann's answer was posted
    assert "send it again" in b_thread.texts[-1]  # ben is told his message was not counted

    bot = await start_bot(tmp_path, db=db)
    try:
        assert len((await bot.store.game(1)).state["turns"]) == 2  # saved before the close
        assert (await bot.store.game(2)).state["turns"] == []
    finally:
        await bot.close()


async def test_a_reply_saved_but_not_posted_is_posted_after_a_restart(tmp_path, monkeypatch):
    db = tmp_path / "haggle.db"
    bot = await start_bot(tmp_path, db=db)
    world = World(bot)
    uma = world.person("uma")
    _, thread = await world.haggle(uma, item=LONGBOARD, agent="rule-seller")
    await world.say(uma, thread, "would you take $120?")
    posted_before = len(thread.messages)

    async def killed_before_posting(live, place, content=None, **kwargs):
        return None  # the process died right after the save

    monkeypatch.setattr(world.games, "_post", killed_before_posting)
    await world.say(uma, thread, "how about $125?")
    assert len(thread.messages) == posted_before  # saved (4 turns) but nothing posted
    assert len((await bot.store.game(1)).state["turns"]) == 4
    await bot.close()

    bot = await start_bot(tmp_path, db=db)
    try:
        world.bot = bot
        bot.get_channel = world.get_channel
        games = bot.get_cog("Games")
        assert await games.flush_outbox() == 1
        assert len(thread.messages) == posted_before + 1
        assert "turns left" in thread.texts[-1]  # the bot's reply to $125
        assert await games.flush_outbox() == 0  # posted once, never twice
        await world.say(uma, thread, "would you take $130?")  # the game goes on
        assert len((await bot.store.game(1)).state["turns"]) == 6
    finally:
        await bot.close()


async def test_a_reply_posted_but_not_marked_is_not_posted_again_after_a_restart(tmp_path,
                                                                                  monkeypatch):
    """Killed between the post and its mark (the soak found one such duplicate): the restart
    sees the move in the thread's history and only marks it."""
    from bot_fakes import THE_BOT

    db = tmp_path / "haggle.db"
    bot = await start_bot(tmp_path, db=db)
    world = World(bot)
    uma = world.person("uma")
    _, thread = await world.haggle(uma, item=LONGBOARD, agent="rule-seller")
    await world.say(uma, thread, "would you take $120?")
    monkeypatch.setattr(world.games, "_mark_posted", lambda live, card=False: None)  # killed
    await world.say(uma, thread, "how about $125?")
    posted = len(thread.messages)
    assert (await bot.store.game(1)).state["bot"]["posted"] < 4  # saved, posted, not marked
    await bot.close()

    bot = await start_bot(tmp_path, db=db)
    try:
        world.bot = bot
        bot.get_channel = world.get_channel
        bot._connection.user = THE_BOT
        assert await bot.get_cog("Games").flush_outbox() == 0
        assert len(thread.messages) == posted  # not twice
        await bot.get_cog("Games").settle_marks()
        assert (await bot.store.game(1)).state["bot"]["posted"] == 4
    finally:
        await bot.close()


async def test_a_result_card_saved_but_not_posted_is_posted_after_a_restart(tmp_path):
    import discord

    db = tmp_path / "haggle.db"
    bot = await start_bot(tmp_path, db=db)
    world = World(bot)
    una = world.person("una")
    _, thread = await world.haggle(una, item=LONGBOARD, agent="rule-seller")
    await world.say(una, thread, "would you take $120?")
    real_send = thread.send

    async def failing_send(*args, **kwargs):
        raise discord.HTTPException(type("R", (), {"status": 503, "reason": "down"})(), "down")

    thread.send = failing_send  # Discord is down as the game ends
    await world.press(una, thread, "walk")
    assert (await bot.store.game(1)).status == "finished"
    assert not thread.embeds or thread.embeds[-1].title != "No deal: you walked away"
    await bot.close()

    thread.send = real_send
    bot = await start_bot(tmp_path, db=db)
    try:
        world.bot = bot
        bot.get_channel = world.get_channel
        games = bot.get_cog("Games")
        assert await games.flush_outbox() == 1
        assert thread.embeds[-1].title == "No deal: you walked away"
        assert await games.flush_outbox() == 0
    finally:
        await bot.close()


# --------------------------------------------------------------------------- item 7 and 1


async def _tournament_run(world, user, channel=None, **params):
    from bot_fakes import invoke

    interaction = world.interaction(user, channel)
    await invoke(world.bot.get_cog("Tournaments").run, interaction, **params)
    return interaction


async def test_two_tournament_runs_in_one_server_never_both_start(tmp_path, monkeypatch):
    import sys

    bot = await start_bot(tmp_path)
    monkeypatch.setattr(sys.modules["bot.cogs.tournaments"], "_report_files",
                        lambda data, report: None)
    world = World(bot)
    try:
        boss = world.person("boss", manage_guild=True)
        first, second = await asyncio.gather(
            _tournament_run(world, boss, agents="rule-buyer, rule-seller", scenarios=1),
            _tournament_run(world, boss, agents="rule-buyer, rule-seller", scenarios=2))
        texts = [first.text, second.text]
        assert sum("Tournament started" in t for t in texts) == 1
        assert sum("being set up here" in t or "already running" in t for t in texts) == 1
        assert len(world.channel.threads) == 1  # no orphan tournament thread
        tournaments = bot.get_cog("Tournaments")
        (job,) = tournaments.jobs.values()
        await job.task
        assert tournaments._starting == set()
    finally:
        await bot.close()


async def test_the_bot_wide_cap_on_running_tournaments_says_so(tmp_path, monkeypatch):
    import sys

    from bot_fakes import FakeChannel, FakeGuild

    bot = await start_bot(tmp_path, make_config(bot={"max_running_tournaments": 1}))
    monkeypatch.setattr(sys.modules["bot.cogs.tournaments"], "_report_files",
                        lambda data, report: None)
    world = World(bot)
    try:
        boss, other = world.person("boss", manage_guild=True), world.person("o", manage_guild=True)
        elsewhere = FakeChannel(FakeGuild("Another server"))
        started = await _tournament_run(world, boss, agents="rule-buyer, rule-seller",
                                        scenarios=3)
        assert "Tournament started" in started.text
        refused = await _tournament_run(world, other, elsewhere,
                                        agents="rule-buyer, rule-seller", scenarios=1)
        assert "max_running_tournaments" in refused.text and "1 tournament(s)" in refused.text
        assert elsewhere.threads == []
        (job,) = bot.get_cog("Tournaments").jobs.values()
        await job.task
        again = await _tournament_run(world, other, elsewhere,
                                      agents="rule-buyer, rule-seller", scenarios=1)
        assert "Tournament started" in again.text  # the slot is free once the first is done
        for job in list(bot.get_cog("Tournaments").jobs.values()):
            await job.task
    finally:
        await bot.close()


# --------------------------------------------------------------------------- item 9


async def test_models_list_shows_no_paths_or_urls_except_to_the_owner(tmp_path):
    from dataclasses import replace

    from bot_fakes import invoke

    from bot.bot_config import BotConfig
    from bot.config import parse_config

    gguf = tmp_path / "secret-folder" / "tiny-model.Q4_0.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF" + b"\0" * 2_000_000)
    raw = {"agents": {"a": {"kind": "llm", "role": "seller", "model": "local"},
                      "b": {"kind": "llm", "role": "buyer", "model": "remote"}},
           "models": {"local": {"path": str(gguf)},
                      "remote": {"backend": "openai", "url": "http://10.1.2.3:8080/v1"}}}
    cfg = replace(parse_config(raw, None), extra={"bot": BotConfig.from_table(
        {"owner_ids": [4242], "command_cooldown_s": 0.0}, "bot")})
    bot = await start_bot(tmp_path, cfg)
    world = World(bot)
    try:
        models = bot.get_cog("Models")
        anyone = world.interaction(world.person("viewer"))
        await invoke(models.list_models, anyone)
        embed = anyone.sent[-1]["embed"]
        shown = "\n".join(f"{f.name}\n{f.value}" for f in embed.fields) + str(embed.description)
        assert "`tiny-model.Q4_0.gguf`, 0.00 GB" in shown and "openai backend" in shown
        assert str(tmp_path) not in shown and "secret-folder" not in shown
        assert "10.1.2.3" not in shown and "http" not in shown

        owner = world.interaction(world.person("owner", member_id=4242))
        await invoke(models.list_models, owner)
        full = "\n".join(f.value for f in owner.sent[-1]["embed"].fields)
        assert str(gguf) in full and "http://10.1.2.3:8080/v1" in full
        assert owner.sent[-1]["ephemeral"]  # full detail only privately
    finally:
        await bot.close()


def test_error_texts_lose_their_paths_and_urls():
    from bot.discord_util import public_error

    text = public_error("/srv/haggle/data/haggle.db is locked while saving a game; model at "
                        "http://10.0.0.2:8080/v1 failed; see C:\\bot\\models\\m.gguf")
    assert "/srv" not in text and "10.0.0.2" not in text and "C:\\" not in text
    assert "`haggle.db`" in text and "`m.gguf`" in text
    assert public_error("$120/$130, buyer/seller, 1/2") == "$120/$130, buyer/seller, 1/2"


async def test_a_store_error_reaching_a_player_names_no_path(tmp_path, monkeypatch):
    from bot.store.errors import translated

    bot = await start_bot(tmp_path)
    world = World(bot)
    try:
        yan = world.person("yan")
        _, thread = await world.haggle(yan, item=LONGBOARD, agent="rule-seller")

        @translated("updating a game")
        async def locked(self, *args, **kwargs):
            import sqlite3
            raise sqlite3.OperationalError("database is locked")

        from types import MethodType

        monkeypatch.setattr(bot.store, "update_game", MethodType(locked, bot.store))
        await world.say(yan, thread, "would you take $120?")
        reply = thread.messages[-1].content
        assert "locked" in reply and "haggle.db" in reply  # the reason, by file name
        assert str(tmp_path) not in reply
    finally:
        await bot.close()


async def test_tournament_report_and_autocomplete_see_only_this_server(tmp_path, monkeypatch):
    import sys

    from bot_fakes import FakeChannel, FakeGuild, invoke

    bot = await start_bot(tmp_path)
    monkeypatch.setattr(sys.modules["bot.cogs.tournaments"], "_report_files",
                        lambda data, report: None)
    world = World(bot)
    try:
        tournaments = bot.get_cog("Tournaments")
        boss = world.person("boss", manage_guild=True)
        await _tournament_run(world, boss, agents="rule-buyer, rule-seller", scenarios=1)
        (job,) = tournaments.jobs.values()
        name = job.plan.name
        await job.task
        other = FakeChannel(FakeGuild("Elsewhere"))
        stranger = world.person("stranger")
        choices = await tournaments._name_choices(world.interaction(stranger, other), "")
        assert choices == []
        peek = world.interaction(stranger, other)
        await invoke(tournaments.report_command, peek, name=name)
        assert "No tournament called" in peek.text and not any(s.get("embed") for s in peek.sent)
        home = await tournaments._name_choices(world.interaction(stranger), "")
        assert [c.value for c in home] == [name]
    finally:
        await bot.close()


# --------------------------------------------------------------------------- item 10


async def test_display_names_and_model_text_are_escaped(tmp_path):
    link = "[free money](https://evil.example) @everyone <@123>"
    backend = FakeBackend(default=json.dumps({"act": "counter-price", "price": 190,
                                              "utterance": f"**Deal!** {link}"}))
    world = await llm_world(tmp_path, backend)
    try:
        mallory = world.person("**[admin](https://evil.example)**")
        _, thread = await world.haggle(mallory, item=LONGBOARD, agent="llm-seller")
        await world.say(mallory, thread, "would you take $120?")
        reply = thread.texts[-1]
        assert "https://" not in reply and "](" not in reply
        assert "@everyone" not in reply and "<@123>" not in reply
        await world.press(mallory, thread, "walk")
        assert thread.texts[-1].startswith("**\\*\\*\\[admin]((link removed))") and "https://" not in thread.texts[-1]
        assert "https://" not in thread.embeds[-1].description
        from bot.discord_util import safe_text
        assert safe_text(f"**Deal!** {link}") == ("\\*\\*Deal!\\*\\* \\[free money]((link "
                                                  "removed)) @\u200beveryone <@\u200b123>")
    finally:
        await world.bot.close()
