import pytest

from bot.negotiation.agents import DialogueState, RuleAgent, round_price
from bot.negotiation.guard import violates_reservation
from bot.negotiation.runner import run_negotiation
from bot.negotiation.scenario import Scenario
from bot.negotiation.turns import Act, Outcome, Role, Turn


def _state(scenario, role, turns=(), max_turns=15):
    return DialogueState(scenario, role, tuple(turns), max_turns)


async def test_opens_near_own_target(scenario):
    agent = RuleAgent(chatter=0)
    seller = await agent.respond(_state(scenario, Role.SELLER, [Turn(Role.BUYER, Act.INTRO, None, "hi")]))
    assert seller.act is Act.INIT_PRICE and seller.price == 200
    buyer = await agent.respond(_state(scenario, Role.BUYER))
    assert buyer.act is Act.INIT_PRICE and 130 <= buyer.price <= 150


async def test_concedes_a_fraction_of_the_gap_and_never_goes_back(scenario):
    agent = RuleAgent(concession=0.5, accept_gap=0.0, chatter=0)
    turns = [Turn(Role.SELLER, Act.INIT_PRICE, 200, ""), Turn(Role.BUYER, Act.COUNTER_PRICE, 100, "")]
    t = await agent.respond(_state(scenario, Role.SELLER, turns))
    # half-way from 200 toward the bottom line 140 (the buyer's 100 is below it): 170
    assert t.act is Act.COUNTER_PRICE and t.price == 170


async def test_never_crosses_reservation_even_on_the_last_turn(scenario):
    agent = RuleAgent(concession=1.0, chatter=0)
    turns = [Turn(Role.SELLER, Act.INIT_PRICE, 200, ""), Turn(Role.BUYER, Act.COUNTER_PRICE, 60, "")]
    t = await agent.respond(_state(scenario, Role.SELLER, turns, max_turns=3))
    assert t.act is not Act.ACCEPT and t.price >= scenario.seller_reservation


async def test_accepts_within_gap(scenario):
    agent = RuleAgent(concession=0.25, accept_gap=0.05, chatter=0)
    turns = [Turn(Role.SELLER, Act.INIT_PRICE, 160, ""), Turn(Role.BUYER, Act.COUNTER_PRICE, 155, "")]
    t = await agent.respond(_state(scenario, Role.SELLER, turns))
    assert t.act is Act.ACCEPT and t.price == 155


async def test_deterministic_under_seed(scenario):
    a = await run_negotiation(scenario, RuleAgent("b", seed=3), RuleAgent("s", seed=4))
    b = await run_negotiation(scenario, RuleAgent("b", seed=3), RuleAgent("s", seed=4))
    assert [t.to_dict() | {"seconds": 0} for t in a.turns] == [t.to_dict() | {"seconds": 0} for t in b.turns]
    texts = set()
    for seed in range(8):
        rec = await run_negotiation(scenario, RuleAgent("b", seed=seed), RuleAgent("s", seed=seed))
        texts.add(rec.turns[0].utterance)
    assert len(texts) > 1  # template variety across seeds


@pytest.mark.parametrize("listing, expected", [(7.3, 7.5), (45.4, 45), (123, 125), (1234, 1225), (23456, 23500)])
def test_round_price_like_people(listing, expected):
    assert round_price(listing, listing) == expected


async def test_rule_vs_rule_never_violates_reservations():
    for i, (listing, target) in enumerate([(10, 6), (80, 50), (265, 243), (1500, 900), (40, 39)]):
        sc = Scenario.build(id=f"s{i}", title="item", listing_price=listing, buyer_target=target)
        rec = await run_negotiation(sc, RuleAgent("b", seed=i), RuleAgent("s", seed=i))
        assert rec.outcome in (Outcome.DEAL, Outcome.TURN_LIMIT)
        for k, t in enumerate(rec.turns):
            assert not violates_reservation(t, sc, rec.turns[:k])
        assert rec.metrics["reservation_violations"] == 0


async def test_templates_never_repeat_their_words_within_a_negotiation():
    from bot.negotiation.agents import words_only

    for i, (listing, target) in enumerate([(125, 95), (3450, 2070), (160, 121), (40, 20)]):
        sc = Scenario.build(id=f"w{i}", title="item", listing_price=listing, buyer_target=target)
        rec = await run_negotiation(sc, RuleAgent("b", concession=0.1, seed=i), RuleAgent("s", concession=0.1, seed=i))
        for role in (Role.BUYER, Role.SELLER):
            said = [words_only(t.utterance) for t in rec.turns if t.role is role]
            assert len(said) == len(set(said)), said
