"""LLM-vs-LLM negotiations on the real embedded model (SmolLM2-135M through llama.cpp), in
the paper's setting (policy "llm": the model picks act and price and writes the words).

Run on both in-process backends: one llama.cpp instance per seat, and the batched engine
(bot/llm/batched.py). Not a quality bar (a 135M model haggles poorly; see the hybrid policy
for that) but the contract: every negotiation completes, every turn is a valid action-utterance pair whose text
agrees with its price, and no turn crosses a reservation price.
"""

import asyncio
from dataclasses import replace

import pytest

from bot.agent_factory import AgentFactory
from bot.agreemate import load_agreemate_scenarios
from bot.config import load_config
from bot.llm.models import ModelSpec
from bot.negotiation.guard import utterance_problem, violates_reservation
from bot.negotiation.prompts import REPLY_ACTS
from bot.negotiation.runner import run_negotiation
from bot.negotiation.turns import Outcome, standing_price

pytestmark = [pytest.mark.llm, pytest.mark.slow]


def config_for(backend: str):
    """The repo's config with its default model on ``backend``: one llama.cpp instance per
    seat, or the batched engine (one context, a sequence per seat, one thread). Seeded: a
    seat's draws repeat from run to run (the batched engine's only as far as the logits do,
    which depend on what else shares the step)."""
    cfg = load_config()
    if backend == "llamacpp-batched":
        spec = ModelSpec(name="default", backend="llamacpp-batched", n_slots=4, n_ctx=2048,
                         n_threads=1, seed=0)
    else:
        spec = ModelSpec(name="default", backend="llamacpp", n_ctx=4096, seed=0)
    return replace(cfg, models={**cfg.models, "default": spec})


@pytest.fixture(scope="module", params=["llamacpp", "llamacpp-batched"])
def records(request):
    async def table(factory, scenarios):
        # each table has its own buyer and seller (own llama.cpp instances, one thread each,
        # so two tables use both cores; or, batched, four sequences of one engine)
        buyer, seller = factory.build("llm-buyer", "buyer"), factory.build("llm-seller", "seller")
        return [await run_negotiation(sc, buyer, seller) for sc in scenarios], buyer.stats, seller.stats

    async def play():
        factory = AgentFactory(config_for(request.param))
        try:
            scenarios = load_agreemate_scenarios()[:10]
            results = await asyncio.gather(table(factory, scenarios[0::2]), table(factory, scenarios[1::2]))
            return [rec for recs, _, _ in results for rec in recs], [st for r in results for st in r[1:]]
        finally:
            await factory.aclose()

    return asyncio.run(play())


def check_contract(recs) -> None:
    """Every negotiation completed; every turn a valid action-utterance pair whose text agrees
    with its price; no reservation crossed. Shared with the HTTP backend's test."""
    for rec in recs:
        assert rec.outcome is not Outcome.ERROR, rec.error
        assert rec.metrics["reservation_violations"] == 0
        for i, turn in enumerate(rec.turns):
            earlier = rec.turns[:i]
            assert turn.act in REPLY_ACTS and turn.utterance.strip()
            on_table = [p for p in (standing_price(earlier, turn.role.other), standing_price(earlier, turn.role)) if p]
            assert utterance_problem(turn, on_table) is None, (turn, rec.scenario.id)
            assert not violates_reservation(turn, rec.scenario, earlier)


def test_ten_negotiations_complete(records):
    recs, _ = records
    assert len(recs) == 10
    assert all(r.outcome is not Outcome.ERROR for r in recs), [r.error for r in recs]


def test_every_turn_is_a_valid_action_utterance_pair(records):
    recs, stats = records
    model_turns = 0
    for rec in recs:
        for i, turn in enumerate(rec.turns):
            earlier = rec.turns[:i]
            assert turn.act in REPLY_ACTS and turn.utterance.strip()
            on_table = [p for p in (standing_price(earlier, turn.role.other), standing_price(earlier, turn.role)) if p]
            assert utterance_problem(turn, on_table) is None, (turn, rec.scenario.id)
            if not turn.fallback:
                model_turns += 1
                assert turn.prompt_tokens and turn.completion_tokens
                assert turn.prompt_tokens_evaluated is not None
    total = sum(len(r.turns) for r in recs)
    # A real share of the turns are the model's own (fallbacks are counted, not hidden): a
    # broken reply path would leave next to none. Not a quality bar: in the paper's setting the
    # 135M model's own turns on the batched engine were 49% in one CI run (unseeded; the bar was
    # half then, so it failed) and 57-60% here, so a third leaves room for the draw.
    assert model_turns >= total / 3, (model_turns, total, stats)


def test_no_reservation_violations(records):
    recs, _ = records
    for rec in recs:
        assert rec.metrics["reservation_violations"] == 0
        for i, turn in enumerate(rec.turns):
            assert not violates_reservation(turn, rec.scenario, rec.turns[:i])
        if rec.deal_price is not None:
            assert rec.scenario.seller_reservation <= rec.deal_price <= rec.scenario.buyer_reservation


def test_prefix_reuse_keeps_per_turn_cost_flat(records):
    recs, _ = records
    # after an agent's first turn in a negotiation, llama.cpp evaluates only the new suffix
    for rec in recs:
        later = [t for t in rec.turns[2:] if not t.fallback and not t.repaired]
        for t in later:
            assert t.prompt_tokens_evaluated < t.prompt_tokens / 2, t
