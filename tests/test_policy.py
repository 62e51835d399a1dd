"""The concession policy of hybrid agents, and the hybrid LLM agent on a scripted backend."""

import json

import pytest

from bot.llm.fake import FakeBackend
from bot.negotiation.agents import DialogueState
from bot.negotiation.guard import violates_reservation
from bot.negotiation.llm_agent import LLMAgent
from bot.negotiation.policy import PERSONALITY_PARAMS, ConcessionPolicy, Plan, PolicyParams
from bot.negotiation.runner import run_negotiation
from bot.negotiation.scenario import Scenario
from bot.negotiation.turns import Act, Outcome, Role, Turn

QUIET = {name: PolicyParams(**{**p.__dict__, "chatter": 0.0}) for name, p in PERSONALITY_PARAMS.items()}


def st(scenario, role, turns=(), max_turns=15):
    return DialogueState(scenario, role, tuple(turns), max_turns)


class PolicyAgent:
    """The policy alone, with fixed words, to test its dynamics without a model."""

    def __init__(self, name, params):
        self.name, self.policy = name, ConcessionPolicy(params)

    async def respond(self, state):
        plan = self.policy.plan(state)
        return Turn(state.role, plan.act, plan.price, f"{plan.act.value} {plan.price}")


def test_openings_by_personality(scenario):
    seller = ConcessionPolicy(QUIET["fair"]).plan(st(scenario, Role.SELLER, [Turn(Role.BUYER, Act.INTRO, None, "hi")]))
    assert (seller.act, seller.price) == (Act.INIT_PRICE, 200)
    fair = ConcessionPolicy(QUIET["fair"]).plan(st(scenario, Role.BUYER))
    tough = ConcessionPolicy(QUIET["aggressive"]).plan(st(scenario, Role.BUYER))
    assert tough.price < fair.price <= scenario.buyer_target


def test_aggressive_concedes_less_than_passive(scenario):
    turns = [Turn(Role.BUYER, Act.INIT_PRICE, 100, ""), Turn(Role.SELLER, Act.INIT_PRICE, 200, ""),
             Turn(Role.BUYER, Act.COUNTER_PRICE, 120, "")]
    prices = {p: ConcessionPolicy(QUIET[p]).next_price(st(scenario, Role.SELLER, turns))
              for p in ("aggressive", "fair", "passive")}
    assert prices["aggressive"] > prices["fair"] > prices["passive"]
    early = ConcessionPolicy(QUIET["fair"]).drift(st(scenario, Role.SELLER, turns))
    late = ConcessionPolicy(QUIET["fair"]).drift(st(scenario, Role.SELLER, turns * 4))
    assert late > early  # Boulware: holds back early


@pytest.mark.parametrize("buyer", ["aggressive", "fair", "passive"])
@pytest.mark.parametrize("seller", ["aggressive", "fair", "passive"])
async def test_policies_never_cross_reservations_and_never_backtrack(scenario, buyer, seller):
    rec = await run_negotiation(scenario, PolicyAgent("b", QUIET[buyer]), PolicyAgent("s", QUIET[seller]))
    assert rec.outcome in (Outcome.DEAL, Outcome.QUIT, Outcome.TURN_LIMIT)
    for i, t in enumerate(rec.turns):
        assert not violates_reservation(t, scenario, rec.turns[:i])
    for role, sign in ((Role.SELLER, -1), (Role.BUYER, 1)):
        prices = [t.price for t in rec.turns if t.role is role and t.act is not Act.ACCEPT and t.price]
        assert all(sign * (b - a) >= 0 for a, b in zip(prices, prices[1:], strict=False))


async def test_fair_pair_agrees_fairly_on_varied_items():
    deals, fairness = 0, []
    for i, (listing, target) in enumerate([(10, 7), (45, 30), (125, 95), (265, 243), (3450, 2070), (800, 400)]):
        sc = Scenario.build(id=f"x{i}", title="item", listing_price=listing, buyer_target=target)
        rec = await run_negotiation(sc, PolicyAgent("b", QUIET["fair"]), PolicyAgent("s", QUIET["fair"]))
        deals += rec.deal_price is not None
        if rec.metrics["fairness"] is not None:
            fairness.append(rec.metrics["fairness"])
    assert deals == 6 and min(fairness) > 0.3


def test_close_offers_are_accepted_not_haggled_in_cents():
    sc = Scenario.build(id="cheap", title="cable", listing_price=8, buyer_target=6)
    turns = [Turn(Role.BUYER, Act.INIT_PRICE, 6, ""), Turn(Role.SELLER, Act.INIT_PRICE, 8, ""),
             Turn(Role.BUYER, Act.COUNTER_PRICE, 7.5, "")]
    plan = ConcessionPolicy(QUIET["fair"]).plan(st(sc, Role.SELLER, turns))
    assert plan.act is Act.ACCEPT and plan.price == 7.5


def _alternating(buyer_prices, seller_prices):
    turns = []
    for b, sp in zip(buyer_prices, seller_prices, strict=False):
        turns.append(Turn(Role.BUYER, Act.COUNTER_PRICE, b, ""))
        if sp is not None:
            turns.append(Turn(Role.SELLER, Act.COUNTER_PRICE, sp, ""))
    return turns


def test_aggressive_walks_away_from_a_bad_last_offer(scenario):
    # 13 turns: a stubborn buyer at 141 against a seller holding 190, the seller's last turn
    turns = _alternating([141] * 7, [190] * 6 + [None])
    assert ConcessionPolicy(QUIET["aggressive"]).plan(st(scenario, Role.SELLER, turns)).act is Act.QUIT


def test_last_turn_takes_a_committed_offer_inside_the_limit_and_nothing_else(scenario):
    # a buyer that never moved from $141 (the limit is $140): no further turn will make it move,
    # and a deal inside the limit is worth at least no deal, so the fair seller takes it then
    asks = [200, 192, 186, 181, 178, 176, None]
    committed = _alternating([141] * 7, asks)
    fair = ConcessionPolicy(QUIET["fair"])
    assert fair.plan(st(scenario, Role.SELLER, committed)) == Plan(Act.ACCEPT, 141)
    # ... only on its last turn: two turns earlier it still holds
    assert fair.plan(st(scenario, Role.SELLER, committed[:-2])).act is not Act.ACCEPT
    # ... and only inside its limit (a committed $135 gets nothing)
    below = _alternating([135] * 7, asks)
    assert fair.plan(st(scenario, Role.SELLER, below)).act is not Act.ACCEPT
    # a side still moving (a nibbler, 1% a turn) gets no such deal: it may take the last counter
    nibbler = _alternating([141 + 2 * k for k in range(7)], asks)
    assert fair.plan(st(scenario, Role.SELLER, nibbler)).act is not Act.ACCEPT
    # deadline_take is a per-game coin: 0 never takes it, the aggressive seller's 0.5 sometimes
    never = ConcessionPolicy(PolicyParams(**{**QUIET["fair"].__dict__, "deadline_take": 0.0}))
    assert never.plan(st(scenario, Role.SELLER, committed)).act is not Act.ACCEPT
    # nor where the limit is a published formula: taking an offer at it is the old exploit
    published = ConcessionPolicy(QUIET["fair"], private_limit=False)
    assert published.plan(st(scenario, Role.SELLER, committed)).act is not Act.ACCEPT
    high = _alternating([160] * 7, asks)  # inside the aggressive seller's limit, $152
    took = [ConcessionPolicy(QUIET["aggressive"], seed=s).plan(st(scenario, Role.SELLER, high)).act is Act.ACCEPT
            for s in range(40)]
    assert 5 <= sum(took) <= 35


def test_last_turn_accepts_a_side_that_reciprocated(scenario):
    # the buyer matched the seller's concessions all along; its last offer is within the limit
    turns = _alternating([120, 130, 140, 148, 154, 158, 160], [200, 190, 182, 176, 172, 170, None])
    plan = ConcessionPolicy(QUIET["fair"]).plan(st(scenario, Role.SELLER, turns))
    assert (plan.act, plan.price) == (Act.ACCEPT, 160)


def _seller_prices_against(scenario, buyer_line):
    """The fair seller's asks against a buyer whose k-th offer is buyer_line(k)."""
    turns, asks = [], []
    for k in range(7):
        turns.append(Turn(Role.BUYER, Act.COUNTER_PRICE, buyer_line(k), ""))
        plan = ConcessionPolicy(QUIET["fair"]).plan(st(scenario, Role.SELLER, turns))
        if plan.act is not Act.COUNTER_PRICE and plan.act is not Act.INIT_PRICE and plan.act is not Act.INSIST:
            break
        asks.append(plan.price)
        turns.append(Turn(Role.SELLER, plan.act, plan.price, ""))
    return asks


def test_stubborn_anchor_gets_little_and_reciprocity_pays(scenario):
    stubborn = _seller_prices_against(scenario, lambda k: 140)           # the bottom line, every turn
    conceding = _seller_prices_against(scenario, lambda k: 120 + 5 * k)  # 2.5% of the listing a turn
    given_stubborn = 200 - stubborn[-1]
    assert given_stubborn <= 0.4 * (200 - scenario.seller_reservation)  # little of the zone
    # by the same turn, the conceding buyer got more: the seller answered its concessions
    n = min(len(stubborn), len(conceding))
    assert conceding[n - 1] < stubborn[n - 1]
    # and the stubborn buyer never gets close to the bottom line: nothing converges on it
    assert min(stubborn) >= scenario.seller_reservation + 0.25 * (200 - scenario.seller_reservation)


def test_absurd_anchor_then_concessions_buys_nothing(scenario):
    # opening at $10 and "conceding" to $100 (half the listing) counts as no concession at all
    anchored = _seller_prices_against(scenario, lambda k: [10, 40, 70, 100, 100, 100, 100][k])
    flat = _seller_prices_against(scenario, lambda k: 100)
    assert anchored == flat


@pytest.mark.parametrize("personality", ["aggressive", "fair", "passive"])
def test_every_personality_answers_concessions(scenario, personality):
    base = [Turn(Role.BUYER, Act.INIT_PRICE, 120, ""), Turn(Role.SELLER, Act.INIT_PRICE, 200, "")]
    still = ConcessionPolicy(QUIET[personality]).next_price(
        st(scenario, Role.SELLER, [*base, Turn(Role.BUYER, Act.COUNTER_PRICE, 120, "")]))
    moved = ConcessionPolicy(QUIET[personality]).next_price(
        st(scenario, Role.SELLER, [*base, Turn(Role.BUYER, Act.COUNTER_PRICE, 150, "")]))
    assert moved < still <= 200


def test_no_cent_ping_pong():
    # prices stay on the item's rounding step, and two offers a step apart close the deal
    sc = Scenario.build(id="lamp", title="lamp", listing_price=480, buyer_target=300)
    turns = _alternating([300, 340, 370, 395], [480, 440, 420, None])
    policy = ConcessionPolicy(QUIET["fair"])
    plan = policy.plan(st(sc, Role.SELLER, turns))
    assert plan.price % 5 == 0
    near = _alternating([300, 340, 370, 415], [480, 440, 420, None])
    assert policy.plan(st(sc, Role.SELLER, near)).act is Act.ACCEPT


def narration(text):
    return json.dumps({"utterance": text})


async def test_hybrid_agent_narrates_the_policys_move(scenario):
    backend = FakeBackend([narration("Thanks! It's $200, and it rides great.")])
    agent = LLMAgent("s", backend, policy=ConcessionPolicy(QUIET["fair"]))
    turn = await agent.respond(st(scenario, Role.SELLER, [Turn(Role.BUYER, Act.INTRO, None, "hi")]))
    assert (turn.act, turn.price) == (Act.INIT_PRICE, 200) and "rides great" in turn.utterance
    call = backend.calls[0]
    assert list(call.schema["properties"]) == ["utterance"]
    assert "Your move: propose $200" in call.messages[-1]["content"]


@pytest.mark.parametrize("bad", [narration("How about $150?"), narration("Let's talk."), "nonsense"])
async def test_hybrid_words_must_state_the_planned_price(scenario, bad):
    backend = FakeBackend([bad, bad])
    agent = LLMAgent("s", backend, policy=ConcessionPolicy(QUIET["fair"]))
    turn = await agent.respond(st(scenario, Role.SELLER, [Turn(Role.BUYER, Act.INTRO, None, "hi")]))
    assert turn.fallback and turn.price == 200 and "$200" in turn.utterance
    if bad != "nonsense":
        assert "$200" in backend.calls[1].messages[-1]["content"]


async def test_hybrid_prompt_is_append_only(scenario):
    def words(messages):
        move = messages[-1]["content"].split("Your move: ")[-1]
        price = [w for w in move.replace(".", " ").split() if w.startswith("$")]
        count = "many" if len(messages) > 6 else "few"
        return narration(f"After {count} words: {price[0] if price else 'hello'} from me, {len(messages) * 'a'}.")

    backend = FakeBackend(default=words)
    seller_backend = FakeBackend(default=words)
    buyer = LLMAgent("b", backend, policy=ConcessionPolicy(QUIET["fair"]))
    seller = LLMAgent("s", seller_backend, policy=ConcessionPolicy(QUIET["fair"]))
    rec = await run_negotiation(scenario, buyer, seller)
    assert rec.outcome is Outcome.DEAL
    calls = [c.messages for c in backend.calls]
    for before, after in zip(calls, calls[1:], strict=False):
        # everything but the last (directive-bearing) user message is a prefix of the next prompt
        assert after[: len(before) - 1] == before[:-1]
        assert after[len(before) - 1]["content"].startswith(before[-1]["content"])


def test_every_personality_has_a_prompt_a_policy_and_a_rule_factor():
    """One personality type (bot/negotiation/personality.py) behind every table keyed by it."""
    import typing

    from bot.config import AgentConfig
    from bot.negotiation.personality import PERSONALITIES, RULE_CONCESSION_FACTOR
    from bot.negotiation.prompts import PERSONALITY_PROMPTS

    assert PERSONALITIES == ("aggressive", "fair", "passive")
    for table in (PERSONALITY_PROMPTS, PERSONALITY_PARAMS, RULE_CONCESSION_FACTOR):
        assert tuple(table) == PERSONALITIES
    hint = typing.get_type_hints(AgentConfig)["personality"]
    assert typing.get_args(hint) == PERSONALITIES


def test_a_longer_turn_cap_spreads_the_drift(scenario):
    turns = [Turn(Role.BUYER, Act.INIT_PRICE, 120, ""), Turn(Role.SELLER, Act.INIT_PRICE, 200, ""),
             Turn(Role.BUYER, Act.COUNTER_PRICE, 120, "")]
    policy = ConcessionPolicy(QUIET["fair"])
    short, long = policy.drift(st(scenario, Role.SELLER, turns, 15)), policy.drift(st(scenario, Role.SELLER, turns, 60))
    assert 0 < long < short / 3  # a 60-turn game does not hand out a 15-turn game's drift 4 times over


@pytest.mark.parametrize("personality", sorted(QUIET))
def test_a_seller_asked_about_the_item_answers_before_its_price_once_a_game(scenario, personality):
    policy = ConcessionPolicy(QUIET[personality])
    about = Turn(Role.BUYER, Act.INQUIRE, None, "Hi! Can you tell me a little about it?")
    assert policy.plan(st(scenario, Role.SELLER, [about])) == Plan(Act.INFORM, None)
    # a question about the price gets the price
    how_much = Turn(Role.BUYER, Act.INQUIRE, None, "Is it in good shape? How much do you want for it?")
    assert policy.plan(st(scenario, Role.SELLER, [how_much])).act is Act.INIT_PRICE
    # once a game: a seller who has answered names its price at the next question
    answered = Turn(Role.SELLER, Act.INFORM, None, "It is in great shape, barely used.")
    again = Turn(Role.BUYER, Act.INQUIRE, None, "Does it come with the box?")
    assert policy.plan(st(scenario, Role.SELLER, [about, answered, again])).act is Act.INIT_PRICE
    # a buyer's price is answered with a price
    offer = Turn(Role.BUYER, Act.INIT_PRICE, 0.6 * scenario.listing_price, "Would you take that?")
    assert policy.plan(st(scenario, Role.SELLER, [offer])).act is not Act.INFORM
    # buyers do not answer first: the rule is the seller's
    pitch = Turn(Role.SELLER, Act.INFORM, None, "Do you want to hear about it?")
    assert policy.plan(st(scenario, Role.BUYER, [pitch])).act is Act.INIT_PRICE
