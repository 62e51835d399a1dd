"""The concession policy of hybrid agents, and the hybrid LLM agent on a scripted backend."""

import json

import pytest

from bot.llm.fake import FakeBackend
from bot.negotiation.agents import DialogueState
from bot.negotiation.guard import violates_reservation
from bot.negotiation.llm_agent import LLMAgent
from bot.negotiation.policy import PERSONALITY_PARAMS, ConcessionPolicy, PolicyParams
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
    early = ConcessionPolicy(QUIET["fair"]).concession(st(scenario, Role.SELLER, turns))
    late = ConcessionPolicy(QUIET["fair"]).concession(st(scenario, Role.SELLER, turns * 4))
    assert late > early


@pytest.mark.parametrize("buyer", ["aggressive", "fair", "passive"])
@pytest.mark.parametrize("seller", ["aggressive", "fair", "passive"])
async def test_policies_never_cross_reservations_and_never_backtrack(scenario, buyer, seller):
    rec = await run_negotiation(scenario, PolicyAgent("b", QUIET[buyer]), PolicyAgent("s", QUIET[seller]))
    assert rec.outcome in (Outcome.DEAL, Outcome.QUIT, Outcome.TURN_LIMIT)
    for i, t in enumerate(rec.turns):
        assert not violates_reservation(t, scenario, rec.turns[:i])
    for role, sign in ((Role.SELLER, -1), (Role.BUYER, 1)):
        prices = [t.price for t in rec.turns if t.role is role and t.act is not Act.ACCEPT and t.price]
        assert all(sign * (b - a) >= 0 for a, b in zip(prices, prices[1:]))


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


def test_aggressive_walks_away_from_a_bad_last_offer(scenario):
    turns = []
    for i in range(13):
        role = Role.BUYER if i % 2 == 0 else Role.SELLER
        turns.append(Turn(role, Act.COUNTER_PRICE, 141 if role is Role.BUYER else 190, ""))
    assert ConcessionPolicy(QUIET["aggressive"]).plan(st(scenario, Role.SELLER, turns)).act is Act.QUIT
    assert ConcessionPolicy(QUIET["fair"]).plan(st(scenario, Role.SELLER, turns)).act is Act.ACCEPT


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
    for before, after in zip(calls, calls[1:]):
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
