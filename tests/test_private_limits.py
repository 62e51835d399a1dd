"""Private limits: the bot's reservation price is drawn per game, recorded, and never crossed."""

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import load_config
from bot.errors import ScenarioError
from bot.negotiation.guard import violates_reservation
from bot.negotiation.prompts import money
from bot.negotiation.scenario import Scenario, draw_private_limit
from bot.negotiation.turns import Act, Role

REPO = Path(__file__).resolve().parents[1]


def test_limits_vary_within_the_spread_and_respect_targets(scenario):
    drawn = [draw_private_limit(scenario, Role.SELLER, seed=s, spread=0.1).seller_reservation
             for s in range(40)]
    assert len(set(drawn)) >= 5  # no formula gives it away
    assert all(120 <= d <= 160 and d % 5 == 0 for d in drawn)  # 140 +- 20, rounded like prices
    assert draw_private_limit(scenario, Role.SELLER, seed=7).seller_reservation == \
        draw_private_limit(scenario, Role.SELLER, seed=7).seller_reservation  # seeded
    buyer = [draw_private_limit(scenario, Role.BUYER, seed=s).buyer_reservation for s in range(40)]
    assert min(buyer) >= scenario.buyer_target and len(set(buyer)) >= 5
    # the other side's reservation is untouched, and spread 0 keeps the scenario as it is
    assert draw_private_limit(scenario, Role.SELLER, seed=1).buyer_reservation == 200
    assert draw_private_limit(scenario, Role.SELLER, seed=1, spread=0) == scenario
    tight = Scenario.build(id="t", title="t", listing_price=100, buyer_target=60, seller_target=72)
    assert all(draw_private_limit(tight, Role.SELLER, seed=s).seller_reservation <= 72 for s in range(40))
    with pytest.raises(ScenarioError, match="spread"):
        draw_private_limit(scenario, Role.SELLER, seed=1, spread=1.5)


def test_a_limit_near_the_target_is_drawn_inside_the_room_not_piled_on_the_target():
    # a buyer whose target (184) lies inside its private range (200 +- 40): the draw is uniform
    # on what is left of the range above the target, not clamped to the target (which would put
    # 30% of the games at a ceiling equal to the target: a bot with no room that pays its limit)
    sc = Scenario.build(id="high", title="t", listing_price=200, buyer_target=184, seller_target=200)
    drawn = [draw_private_limit(sc, Role.BUYER, seed=s, spread=0.2).buyer_reservation for s in range(400)]
    assert min(drawn) >= 184 and max(drawn) <= 240
    assert sum(d <= 185 for d in drawn) < 0.1 * len(drawn)  # a rounding step's worth, not 30%
    assert len(set(drawn)) >= 10


def test_config_rejects_a_spread_beyond_the_fraction(tmp_path):
    bad = tmp_path / "config.toml"
    bad.write_text("[negotiation]\nreservation_spread = 0.8\n")
    with pytest.raises(Exception, match="reservation_spread"):
        load_config(bad)


def _play(person_lines, seed):
    """A scripted buyer against the default seller through `haggle play`'s own functions,
    the model replaced by its template narrator (bench/human_strategies.py)."""
    sys.path.insert(0, str(REPO / "bench"))
    import human_strategies as hs

    from bot.commands.play import new_game, play_session
    from bot.scenarios import load_scenario_set

    cfg = load_config(None)
    sc = load_scenario_set(cfg, "agreemate")[1]  # a $200 item

    async def go():
        fac = hs.factory(cfg, "template")
        agent = fac.build(cfg.default_agent(Role.SELLER), Role.SELLER, seed=seed)
        game, _ = new_game(cfg, sc, agent, human_role=Role.BUYER, seed=seed)
        lines = iter(person_lines)
        out = io.StringIO()
        record = await play_session(game, lambda g: asyncio.sleep(0, next(lines, "")), out)
        return sc, record, out.getvalue()

    return asyncio.run(go())


def test_games_record_their_private_limit_and_reveal_it_only_at_the_end():
    limits = set()
    for seed in range(6):
        _, record, out = _play(["hi", "would you take $150?"] + ["$150"] * 10, seed)
        res = record.scenario.seller_reservation
        limits.add(res)
        assert record.to_dict()["scenario"]["seller_reservation"] == res  # in the game's record
        transcript, _, verdict = out.rpartition("hidden bottom line was")
        if res == 150:  # the person's own number: the bot may take it, never offer it itself
            assert all(t.price != res or t.act is Act.ACCEPT for t in record.turns if t.role is Role.SELLER)
        else:
            assert money(res) not in transcript.split("\n", 1)[1]  # never said during the game
        assert money(res) in verdict
        for i, t in enumerate(record.turns):
            if t.role is Role.SELLER:
                assert not violates_reservation(t, record.scenario, record.turns[:i])
    assert len(limits) >= 3 and limits != {0.7 * 200}


def test_stubborn_published_fraction_gets_a_deal_only_where_the_private_limit_allows():
    # the bot takes a committed offer inside its limit on its last turn, so the published
    # fraction ($140) is no guarantee: the game's private draw decides (it used to be $140 each time)
    deals = {}
    for seed in range(8):
        _, record, _ = _play(["I can pay $140, that's my final offer."] * 8, seed)
        limit = record.scenario.seller_reservation
        assert (record.deal_price is not None) == (limit <= 140)
        deals[limit <= 140] = deals.get(limit <= 140, 0) + 1
    assert deals.get(True) and deals.get(False)  # both happen over eight games


def test_a_published_limit_takes_no_committed_offer():
    # reservation_spread 0: the limit is the published fraction, so the default seller is built
    # to hold on its last turn against a committed offer (tests/test_policy.py: private_limit)
    from dataclasses import replace

    sys.path.insert(0, str(REPO / "bench"))
    import human_strategies as hs

    cfg = load_config(None)
    spread0 = replace(cfg, negotiation=replace(cfg.negotiation, reservation_spread=0))
    seller = cfg.default_agent(Role.SELLER)
    assert hs.factory(cfg, "template").build(seller, Role.SELLER).policy.private_limit
    assert not hs.factory(spread0, "template").build(seller, Role.SELLER).policy.private_limit


def test_haggle_play_prints_the_drawn_limit():
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "play", "--role", "buyer", "--agent", "rule",
                           "--scenario-set", "agreemate", "--seed", "5", "--json"],
                          input="would you take 50?\nok deal\n", capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=True)
    record = json.loads(proc.stdout)
    res = record["scenario"]["seller_reservation"]
    assert f"hidden bottom line was {money(res)}." in proc.stderr
    assert res != 0.7 * record["scenario"]["listing_price"]  # drawn, not the published fraction
