import json
import math

import pytest

from bot.errors import ScenarioError, TurnError
from bot.negotiation.scenario import Scenario
from bot.negotiation.turns import Act, Role, Turn, standing_price


def test_acts_cover_agreemate_set_and_dataset_spelling():
    names = {a.value for a in Act}
    assert names == {"intro", "init-price", "offer", "counter-price", "insist", "agree", "disagree",
                     "accept", "reject", "quit", "inform", "inquire", "vague-price", "unknown"}
    assert Act.parse("inquiry") is Act.INQUIRE
    assert Act.parse("") is Act.UNKNOWN
    assert Act.parse(" Counter-Price ") is Act.COUNTER_PRICE


@pytest.mark.parametrize("bad", ["haggle", "counter", "offer!", "<offer|counter|accept|reject>"])
def test_unknown_acts_are_rejected(bad):
    with pytest.raises(TurnError, match="unknown act"):
        Act.parse(bad)


def test_turn_json_round_trip():
    turn = Turn(Role.SELLER, Act.COUNTER_PRICE, 120.5, "How about $120.50?", thought="anchor high",
                prompt_tokens=300, prompt_tokens_evaluated=25, completion_tokens=30, seconds=0.4,
                repaired=True, guard="price clamped")
    data = json.loads(json.dumps(turn.to_dict()))
    assert data["role"] == "seller" and data["act"] == "counter-price"
    assert Turn.from_dict(data) == turn


def test_turn_from_dict_rejects_unknown_fields_and_acts():
    with pytest.raises(TurnError, match="unknown turn field"):
        Turn.from_dict({"role": "buyer", "act": "intro", "price": None, "mood": "happy"})
    with pytest.raises(TurnError, match="unknown act"):
        Turn.from_dict({"role": "buyer", "act": "bargain", "price": None})
    with pytest.raises(TurnError, match="unknown role"):
        Turn.from_dict({"role": "broker", "act": "intro", "price": None})


@pytest.mark.parametrize("price", [0, -5, math.inf, math.nan, "12", True])
def test_turn_rejects_impossible_prices(price):
    with pytest.raises(TurnError):
        Turn(Role.BUYER, Act.OFFER, price, "")


def test_price_acts_need_a_price():
    with pytest.raises(TurnError, match="needs a price"):
        Turn(Role.BUYER, Act.COUNTER_PRICE, None, "lower?")


def test_standing_price_is_last_proposal_of_that_role():
    turns = [Turn(Role.BUYER, Act.INIT_PRICE, 100, ""), Turn(Role.SELLER, Act.COUNTER_PRICE, 180, ""),
             Turn(Role.BUYER, Act.INQUIRE, None, "any scratches?"),
             Turn(Role.SELLER, Act.INSIST, 170, ""), Turn(Role.BUYER, Act.ACCEPT, 170, "")]
    assert standing_price(turns, Role.SELLER) == 170
    assert standing_price(turns, Role.BUYER) == 100  # the accept echoes, it does not propose
    assert standing_price([], Role.BUYER) is None


def test_scenario_defaults_reservations_from_listing():
    s = Scenario.build(id="x", title="Lamp", listing_price=100, buyer_target=60)
    assert s.seller_target == 100 and s.seller_reservation == 70 and s.buyer_reservation == 100
    t = Scenario.build(id="x", title="Lamp", listing_price=100, buyer_target=60,
                       seller_bottom_fraction=0.5, buyer_ceiling_fraction=0.9)
    assert t.seller_reservation == 50 and t.buyer_reservation == 90
    assert t.reservation(Role.SELLER) == 50 and t.target("buyer") == 60
    assert t.within_reservation(Role.SELLER, 50) and not t.within_reservation(Role.SELLER, 49.9)


def test_reservations_never_cross_own_target():
    s = Scenario.build(id="x", title="Lamp", listing_price=100, buyer_target=50, seller_target=60)
    assert s.seller_reservation == 60  # 0.7 x 100 would be above the seller's own target
    assert s.buyer_reservation == 100


@pytest.mark.parametrize("kwargs, message", [
    (dict(listing_price=0, buyer_target=10), "listing_price must be a positive price"),
    (dict(listing_price=-5, buyer_target=10), "listing_price must be a positive price"),
    (dict(listing_price=100, buyer_target=float("nan")), "buyer_target"),
    (dict(listing_price=100, buyer_target=150, seller_target=120), "nothing to negotiate"),
])
def test_scenario_rejects_nonsense(kwargs, message):
    with pytest.raises(ScenarioError, match=message):
        Scenario.build(id="bad", title="x", **kwargs)


def test_scenario_dict_round_trip(scenario):
    assert Scenario.from_dict(json.loads(json.dumps(scenario.to_dict()))) == scenario
