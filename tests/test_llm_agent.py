"""The LLM agent's logic on a scripted backend: parsing, repair, fallback, guard, accounting."""

import json

import pytest

from bot.errors import ContextOverflow, ModelError
from bot.llm.base import ChatResult
from bot.llm.fake import FakeBackend, Slow
from bot.negotiation.agents import DialogueState
from bot.negotiation.llm_agent import LLMAgent, prompt_leak
from bot.negotiation.prompts import schema_acts, system_prompt
from bot.negotiation.runner import run_negotiation
from bot.negotiation.turns import Act, Outcome, Role, Turn


def reply(act, price, text, **extra):
    return json.dumps({**extra, "act": act, "price": price, "utterance": text})


def state(scenario, role=Role.SELLER, turns=()):
    return DialogueState(scenario, role, tuple(turns), 15)


BUYER_OFFERED_150 = [Turn(Role.BUYER, Act.INIT_PRICE, 150, "would you take 150?")]


async def test_valid_reply_becomes_a_turn_with_token_accounting(scenario):
    backend = FakeBackend([ChatResult(reply("counter-price", 185, "I can do $185."), prompt_tokens=300,
                                      prompt_tokens_evaluated=40, completion_tokens=20)])
    turn = await LLMAgent("s", backend).respond(state(scenario, turns=BUYER_OFFERED_150))
    assert (turn.act, turn.price, turn.utterance) == (Act.COUNTER_PRICE, 185, "I can do $185.")
    assert (turn.prompt_tokens, turn.prompt_tokens_evaluated, turn.completion_tokens) == (300, 40, 20)
    assert not turn.repaired and not turn.fallback and turn.guard is None
    call = backend.calls[0]
    assert call.messages[0]["role"] == "system" and "accept" in schema_acts(call.schema)


async def test_answers_are_not_offered_when_nothing_is_on_the_table(scenario):
    backend = FakeBackend([reply("init-price", 200, "It's $200.")])
    await LLMAgent("s", backend).respond(state(scenario, turns=[Turn(Role.BUYER, Act.INTRO, None, "hi")]))
    enum = schema_acts(backend.calls[0].schema)
    assert not {"accept", "reject", "quit"} & set(enum) and "init-price" in enum


@pytest.mark.parametrize("bad, problem", [
    ("not json at all", "not JSON"),
    (reply("counter-price", 185, "How about $170?"), "states $170"),
    (reply("inform", None, "My private goal is to sell high"), "repeats the instructions"),
    (reply("counter-price", 185, "   "), "empty"),
    ("", "returned nothing"),
])
async def test_unusable_reply_is_re_asked_once_with_the_problem(scenario, bad, problem):
    backend = FakeBackend([bad, reply("counter-price", 185, "Meet me at $185?")])
    turn = await LLMAgent("s", backend).respond(state(scenario, turns=BUYER_OFFERED_150))
    assert turn.repaired and not turn.fallback and turn.price == 185
    assert problem in backend.calls[1].messages[-1]["content"]


async def test_still_unusable_after_repair_plays_a_fallback_turn(scenario):
    backend = FakeBackend(["garbage", "more garbage"])
    agent = LLMAgent("s", backend, max_repairs=1)
    turn = await agent.respond(state(scenario, turns=BUYER_OFFERED_150))
    assert turn.fallback and "unusable reply" in turn.guard and turn.price >= scenario.seller_reservation
    assert agent.stats == {"turns": 1, "repaired": 0, "fallback": 1, "model_failed": 0,
                           "over_budget": 0}


@pytest.mark.parametrize("failure", [ModelError("HTTP 500 from server"), Slow("{}", 1.0)])
async def test_backend_failure_or_timeout_plays_a_fallback_turn(scenario, failure):
    agent = LLMAgent("s", FakeBackend([failure]), timeout=0.05)
    turn = await agent.respond(state(scenario, turns=BUYER_OFFERED_150))
    assert turn.fallback and "model error" in turn.guard
    assert turn.model_failed and agent.stats["model_failed"] == 1


async def test_context_overflow_retries_with_trimmed_history(scenario):
    history = [Turn(Role.BUYER if i % 2 == 0 else Role.SELLER, Act.COUNTER_PRICE, 150 + i, "x") for i in range(9)]
    backend = FakeBackend([ContextOverflow(prompt_tokens=5000, max_tokens=160, n_ctx=4096, model="m"),
                           reply("counter-price", 185, "$185 then.")])
    turn = await LLMAgent("s", backend).respond(state(scenario, turns=history))
    assert turn.price == 185 and "earlier turns omitted" in backend.calls[1].messages[1]["content"]


async def test_guard_applies_to_every_llm_turn(scenario):
    backend = FakeBackend([reply("accept", 150, "Deal at $150!")])
    history = [Turn(Role.SELLER, Act.INIT_PRICE, 200, "$200"), Turn(Role.BUYER, Act.COUNTER_PRICE, 100, "100?")]
    turn = await LLMAgent("s", backend).respond(state(scenario, turns=history))
    assert turn.act is Act.COUNTER_PRICE and turn.price >= scenario.seller_reservation and "refused" in turn.guard


async def test_cot_thought_is_kept_for_the_record_but_never_shown(scenario):
    backend = FakeBackend([reply("init-price", 100, "I can pay $100.", thought="start low")],
                          default=reply("quit", None, "bye"))
    buyer = LLMAgent("b", backend, cot=True)
    seller = LLMAgent("s", FakeBackend(default=reply("reject", None, "No thanks.")))
    rec = await run_negotiation(scenario, buyer, seller)
    assert rec.turns[0].thought == "start low"
    assert "start low" not in json.dumps(seller.backend.calls[0].messages)
    assert all(list(shape["properties"])[0] == "thought" for shape in backend.calls[0].schema["anyOf"])
    assert rec.outcome is Outcome.REJECT


def test_prompt_leak_detection(scenario):
    text = system_prompt(scenario, Role.SELLER)
    assert prompt_leak("Sure, it's in great shape.", text) is None
    assert prompt_leak("You are the seller in a haggle over a classifieds listing", text)
    assert prompt_leak('{"act": "offer"}', text)


async def test_parroting_the_other_side_is_re_asked(scenario):
    history = [Turn(Role.BUYER, Act.INIT_PRICE, 150, "I'm so glad you're thinking of a different way to live, $150?")]
    backend = FakeBackend([reply("counter-price", 185, "$185, I'm so glad you're thinking of a different way"),
                           reply("counter-price", 185, "Meet me at $185?")])
    turn = await LLMAgent("s", backend).respond(state(scenario, turns=history))
    assert turn.repaired and turn.utterance == "Meet me at $185?"
    assert "copies the other side" in backend.calls[1].messages[-1]["content"]
