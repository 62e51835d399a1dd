"""The bot's building blocks without Discord: splitting at Discord's limits, throttled live
messages, the per-model waiting line, the [bot] config section, error messages."""

from __future__ import annotations

import asyncio
from itertools import pairwise

import pytest
from bot_fakes import FakeChannel, FakeGuild, make_config

from bot.bot_config import BotConfig, bot_config, check_agents
from bot.discord_util import LiveMessage, clip, ordinal, plain_text, split_text
from bot.errors import ConfigError
from bot.queues import ModelQueue, QueueFull

# --------------------------------------------------------------------------- text


def test_split_text_respects_the_limit_and_keeps_every_line():
    lines = [f"line {i} " + "x" * (i * 37 % 300) for i in range(200)]
    text = "\n".join(lines)
    pieces = split_text(text, 2000)
    assert all(0 < len(p) <= 2000 for p in pieces) and len(pieces) > 1
    assert "\n".join(pieces) == text


def test_split_text_cuts_one_huge_line_at_spaces():
    words = " ".join(["haggle"] * 1000)  # 6,999 characters, no line break
    pieces = split_text(words, 2000)
    assert all(len(p) <= 2000 for p in pieces)
    assert " ".join(pieces).split() == words.split()
    assert split_text("y" * 4500, 2000) == ["y" * 2000, "y" * 2000, "y" * 500]
    assert split_text("", 2000) == [] and split_text("\n\n", 2000) == []


def test_small_helpers():
    assert clip("abcdef", 4) == "abc…" and clip("abc", 4) == "abc"
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]
    assert plain_text("<@123456789012345678> would you take <#42> 150? <:ok:987654321>") == \
        "would you take 150?"


# --------------------------------------------------------------------------- live messages


async def test_live_message_batches_lines_into_throttled_edits():
    channel = FakeChannel(FakeGuild())
    live = LiveMessage(channel, interval=0.2)
    for i in range(30):
        live.append(f"turn {i}")
        await asyncio.sleep(0.01)
    await live.close()
    (message,) = channel.messages
    assert message.content == "\n".join(f"turn {i}" for i in range(30))
    assert len(channel.calls) <= 4  # ~0.3 s of lines: one send and one or two edits
    gaps = [b - a for a, b in pairwise(channel.call_times)]
    assert all(g >= 0.19 for g in gaps)


async def test_live_message_continues_in_a_new_message_past_2000_characters():
    channel = FakeChannel(FakeGuild())
    live = LiveMessage(channel, interval=0.01)
    lines = [f"{i:03d} " + "z" * 96 for i in range(50)]  # 5,000 characters in all
    for line in lines:
        live.append(line)
    await live.close()
    assert len(channel.messages) == 3 and all(len(m.content) <= 2000 for m in channel.messages)
    assert "\n".join(m.content for m in channel.messages) == "\n".join(lines)


async def test_live_message_stops_quietly_when_the_channel_goes_away():
    channel = FakeChannel(FakeGuild())
    live = LiveMessage(channel, interval=0.01)
    live.append("first")
    await asyncio.sleep(0.05)
    channel.deleted = True
    live.append("second")
    await live.close()
    assert live.failed and channel.texts == ["first"]
    live.append("third")  # the work that feeds it goes on without error
    await live.close()


# --------------------------------------------------------------------------- the model queue


async def test_queue_serves_in_order_and_tells_positions():
    queue = ModelQueue("m", slots=1, capacity=3)
    first = queue.enter()
    assert first.position == 0 and await first.wait() == 0
    second, third = queue.enter(), queue.enter()
    assert (second.position, third.position) == (1, 2) and queue.waiting == 2
    first.release()
    assert second.position == 0 and third.position == 1
    assert await second.wait() == 0
    second.release()
    assert await third.wait() == 0 and queue.busy == 1
    third.release()
    third.release()  # twice is harmless
    assert queue.busy == 0 and queue.waiting == 0


async def test_queue_is_bounded():
    queue = ModelQueue("m", slots=2, capacity=1)
    a, b = queue.enter(), queue.enter()
    assert (a.position, b.position) == (0, 0)  # two slots
    c = queue.enter()
    with pytest.raises(QueueFull, match="1 games are already waiting"):
        queue.enter()
    a.release()
    assert c.position == 0
    queue.enter().release()  # room again in the line


async def test_a_cancelled_wait_leaves_the_line_and_passes_the_slot_on():
    queue = ModelQueue("m", slots=1, capacity=5)
    holder = queue.enter()
    leaver, stayer = queue.enter(), queue.enter()
    waiting = asyncio.create_task(leaver.wait())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert stayer.position == 1
    holder.release()
    assert await asyncio.wait_for(stayer.wait(), 1) == 0


async def test_concurrent_games_never_share_a_slot():
    queue = ModelQueue("m", slots=2, capacity=20)
    in_use: set[int] = set()
    most = 0

    async def game() -> None:
        nonlocal most
        ticket = queue.enter()
        try:
            slot = await ticket.wait()
            assert slot not in in_use
            in_use.add(slot)
            most = max(most, len(in_use))
            await asyncio.sleep(0.01)
            in_use.discard(slot)
        finally:
            ticket.release()

    await asyncio.gather(*(game() for _ in range(12)))
    assert most == 2 and queue.busy == 0 and queue.waiting == 0


# --------------------------------------------------------------------------- [bot] config


def test_bot_config_defaults_and_nested_daily_table():
    settings = BotConfig.from_table({"manager_role": "Mods", "owner_ids": [42],
                                     "daily": {"human_role": "seller", "agent": "rule"}}, "bot")
    assert settings.token_env == "DISCORD_TOKEN" and settings.owner_ids == (42,)
    assert settings.daily.human_role == "seller" and settings.daily.agent == "rule"
    assert bot_config(make_config().__class__()) == BotConfig()  # no [bot] section: defaults


@pytest.mark.parametrize("table, message", [
    ({"token": "abc"}, "bot.token: unknown key"),
    ({"queue_size": -1}, "bot.queue_size: must be in [0, 10000]"),
    ({"model_slots": 0}, "bot.model_slots: must be in [1, 64]"),
    ({"inactivity_timeout_s": 5}, "bot.inactivity_timeout_s: must be >= 30"),
    ({"stream_edit_interval_s": 0.2}, "bot.stream_edit_interval_s: must be >= 1 second"),
    ({"reply_budget_s": -1}, "bot.reply_budget_s: must be >= 0 seconds"),
    ({"rephrase_budget_s": 3}, "bot.rephrase_budget_s is now bot.reply_budget_s"),
    ({"scenario_set": "mine"}, "bot.scenario_set: must be one of"),
    ({"owner_ids": ["me"]}, "bot.owner_ids[0]: expected an integer"),
    ({"daily": {"human_role": "both"}}, "bot.daily.human_role: must be one of"),
    ({"daily": {"day_starts_utc_hour": 24}}, "bot.daily.day_starts_utc_hour"),
    ({"daily": {"when": 1}}, "bot.daily.when: unknown key"),
])
def test_bad_bot_config_names_the_key(table, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        BotConfig.from_table(table, "bot")


def test_config_file_section_through_extra_sections(tmp_path, monkeypatch):
    from bot import config

    monkeypatch.setitem(config.EXTRA_SECTIONS, "bot", "bot.bot_config:BotConfig.from_table")
    path = tmp_path / "config.toml"
    path.write_text('[bot]\nmanager_role = "Mods"\n[bot.daily]\nhuman_role = "seller"\n')
    cfg = config.load_config(path)
    assert bot_config(cfg).manager_role == "Mods" and bot_config(cfg).daily.human_role == "seller"


def test_daily_agent_must_exist_and_fit_its_seat():
    cfg = make_config()
    with pytest.raises(ConfigError, match="bot.daily.agent: unknown agent 'ghost'"):
        check_agents(cfg, BotConfig.from_table({"daily": {"agent": "ghost"}}, "bot"))
    with pytest.raises(ConfigError, match="cannot play the seller"):
        check_agents(cfg, BotConfig.from_table({"daily": {"agent": "rule-buyer"}}, "bot"))
    check_agents(cfg, BotConfig.from_table({"daily": {"agent": "rule"}}, "bot"))


# --------------------------------------------------------------------------- errors


def test_errors_become_short_messages_and_bugs_get_an_incident():
    from discord import app_commands

    from bot.app import explain
    from bot.checks import NotManager
    from bot.errors import StoreError

    assert "Manage Server" in explain(NotManager("Mods"))
    assert "in 12 s" in explain(app_commands.CommandOnCooldown(app_commands.Cooldown(1, 20), 12.2))
    missing = explain(app_commands.BotMissingPermissions(["create_public_threads", "embed_links"]))
    assert "Create Public Threads, Embed Links" in missing
    command = app_commands.Command(name="x", description="x", callback=_callback)
    assert explain(app_commands.CommandInvokeError(command, StoreError("disk full"))) == "disk full"
    assert explain(app_commands.CommandInvokeError(command, KeyError("x"))) is None  # a bug


async def _callback(interaction) -> None:
    """A command body for building CommandInvokeErrors."""
