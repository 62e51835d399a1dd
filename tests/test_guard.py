import pytest

from bot.negotiation.guard import guard_turn, rewrite_prices, utterance_problem, violates_reservation
from bot.negotiation.turns import Act, Role, Turn

SELLER_OFFERS_180 = [Turn(Role.SELLER, Act.INIT_PRICE, 180, "180")]


def test_accept_below_bottom_line_is_refused_and_becomes_a_counter(scenario):
    history = [Turn(Role.SELLER, Act.INIT_PRICE, 190, ""), Turn(Role.BUYER, Act.COUNTER_PRICE, 100, "")]
    t = guard_turn(Turn(Role.SELLER, Act.ACCEPT, None, "Deal!"), scenario, history)
    assert t.act is Act.COUNTER_PRICE and t.price == 190
    assert "refused" in t.guard and "Deal" not in t.utterance
    assert not violates_reservation(t, scenario, history)


def test_accept_above_buyer_ceiling_is_refused(scenario):
    history = [Turn(Role.BUYER, Act.INIT_PRICE, 150, ""), Turn(Role.SELLER, Act.COUNTER_PRICE, 250, "")]
    t = guard_turn(Turn(Role.BUYER, Act.ACCEPT, 250, "ok"), scenario, history)
    assert t.act is Act.COUNTER_PRICE and t.price == 150


def test_accept_with_nothing_on_the_table_becomes_a_proposal(scenario):
    t = guard_turn(Turn(Role.SELLER, Act.ACCEPT, None, "sure"), scenario, [])
    assert t.act is Act.INIT_PRICE and t.price == 200 and "$200" in t.utterance


def test_valid_accept_takes_the_standing_price(scenario):
    history = [Turn(Role.SELLER, Act.INIT_PRICE, 180, "")]
    t = guard_turn(Turn(Role.BUYER, Act.ACCEPT, 170, "ok, $170 works"), scenario, history)
    assert t.act is Act.ACCEPT and t.price == 180 and "$180" in t.utterance and "170" not in t.utterance


@pytest.mark.parametrize("role, price, clamped", [
    (Role.SELLER, 100, 140), (Role.SELLER, 1e9, 200), (Role.BUYER, 999, 200)])
def test_proposals_beyond_reservation_are_clamped(scenario, role, price, clamped):
    t = guard_turn(Turn(role, Act.COUNTER_PRICE, price, f"I'll do ${price:g}"), scenario, [])
    assert t.price == clamped and "clamped" in t.guard
    assert utterance_problem(t) is None


@pytest.mark.parametrize("role, price, clamped", [
    (Role.BUYER, 201, 200), (Role.SELLER, 139.5, 140), (Role.SELLER, 200.75, 200)])
def test_proposals_a_hair_beyond_reservation_are_clamped_too(scenario, role, price, clamped):
    # Within the text tolerance of the bound (0.5%), still across it: a buyer with a $199
    # ceiling once offered and paid $200 because the guard took $200 for "the same price".
    t = guard_turn(Turn(role, Act.COUNTER_PRICE, price, f"${price:g} is my offer"), scenario, [])
    assert t.price == clamped and "clamped" in t.guard
    assert t.utterance == f"${clamped:g} is my offer"
    assert not violates_reservation(t, scenario, [])


def test_accept_takes_the_standing_price_to_the_cent(scenario):
    history = [Turn(Role.SELLER, Act.INIT_PRICE, 180.5, "")]
    t = guard_turn(Turn(Role.BUYER, Act.ACCEPT, 180, "ok"), scenario, history)
    assert t.act is Act.ACCEPT and t.price == 180.5


@pytest.mark.parametrize("price", [160, 170])
def test_proposal_no_better_than_standing_offer_becomes_accept(scenario, price):
    history = [Turn(Role.SELLER, Act.INIT_PRICE, 190, ""), Turn(Role.BUYER, Act.COUNTER_PRICE, 170, "")]
    t = guard_turn(Turn(Role.SELLER, Act.COUNTER_PRICE, price, f"{price}?"), scenario, history)
    assert t.act is Act.ACCEPT and t.price == 170


def test_utterance_never_states_another_price(scenario):
    history = [Turn(Role.BUYER, Act.INIT_PRICE, 150, "")]
    t = guard_turn(Turn(Role.SELLER, Act.COUNTER_PRICE, 185, "How about $175? or 185"), scenario, history)
    assert utterance_problem(t, [150]) is None and "$175" not in t.utterance
    t = guard_turn(Turn(Role.SELLER, Act.INFORM, None, "I paid $400 for it"), scenario, history)
    assert utterance_problem(t, [150]) is None and "400" not in t.utterance
    # mentioning the counterpart's offer is fine beside the turn's own price, not instead of it
    t = guard_turn(Turn(Role.SELLER, Act.COUNTER_PRICE, 185, "$150 is too low, $185?"), scenario, history)
    assert t.guard is None
    t = guard_turn(Turn(Role.SELLER, Act.COUNTER_PRICE, 185, "$150 and it's yours"), scenario, history)
    assert t.utterance == "$185 and it's yours"
    t = guard_turn(Turn(Role.SELLER, Act.DISAGREE, None, "$150 is too low"), scenario, history)
    assert t.guard is None


def test_untouched_turns_have_no_guard_note(scenario):
    t = guard_turn(Turn(Role.SELLER, Act.COUNTER_PRICE, 185, "I can do $185."), scenario, SELLER_OFFERS_180[:0])
    assert t.guard is None and t.utterance == "I can do $185."


def test_rewrite_prices_variants():
    assert rewrite_prices("what about 1.2k or $1,200?", [1200], 1100) == "what about $1,100 or $1,100?"
    assert rewrite_prices("iPhone 12 for $300", [300], 250) == "iPhone 12 for $250"
