"""Rephrasing a move the model keeps repeating (bot/negotiation/openers.py, llm_agent ``rephrase``):
the openers table and where it comes from, the grammar that makes a reply begin with one, and the
second round of candidates a hybrid agent draws when none of the first passes."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from bot.llm.base import ChatResult, Sampling
from bot.llm.fake import FakeBackend
from bot.llm.sampling import forced_opening, literal_prefix
from bot.negotiation.agents import DialogueState
from bot.negotiation.llm_agent import LLMAgent
from bot.negotiation.openers import OPENERS, first_word, opener_root, openers_for
from bot.negotiation.policy import ConcessionPolicy
from bot.negotiation.prompts import narration_pattern, narration_schema
from bot.negotiation.turns import Act, Role, Turn
from tests.conftest import shared_file

# ---- the table


def test_openers_skip_every_word_the_agent_has_begun_a_line_with():
    assert first_word("  i'm willing to do $75") == "I'm" and first_word("$75 is fair") is None
    assert opener_root("I'll") == opener_root("I") == "i" and opener_root("That's") == "that"
    said = ["I'm willing to offer you $160 for it.", "How about $170?"]
    got = openers_for(Role.BUYER, Act.COUNTER_PRICE, said, 3)
    assert got == ["The", "Can", "Ok"]  # "I" and "How" are taken; the next three in order
    assert openers_for(Role.BUYER, Act.COUNTER_PRICE, [], 2) == ["I", "How"]
    assert openers_for(Role.BUYER, Act.QUIT, [], 4) == []  # too few people's lines to learn from


def test_the_table_is_what_people_begin_each_move_with_in_the_narrators_training_split():
    from bot.datasets import load_craigslist
    from training.narrator import opener_table

    dialogues = load_craigslist(shared_file("craigslist_bargains", "validation.json"))
    assert opener_table(dialogues) == OPENERS
    for words in OPENERS.values():  # one per root, no greeting
        assert len({opener_root(w) for w in words}) == len(words)
        assert not {"hi", "hello", "hey"} & {opener_root(w) for w in words}


# ---- the grammar


def test_an_opener_begins_the_pattern_and_the_forced_opening():
    plain = narration_pattern(Act.COUNTER_PRICE, 75, Role.SELLER, sentences=1)
    pattern = narration_pattern(Act.COUNTER_PRICE, 75, Role.SELLER, sentences=1, opener="That's")
    assert pattern == "^That's" + plain[1:]
    assert re.match(pattern, "That's a little low, but $75 works.")
    assert not re.match(pattern, "I can do $75.")
    schema = narration_schema(act=Act.COUNTER_PRICE, price=75, role=Role.SELLER, sentences=1,
                              opener="How")
    assert forced_opening(schema) == '{"utterance": "How'  # decoded with the prompt
    assert forced_opening(narration_schema(act=Act.COUNTER_PRICE, price=75, role=Role.SELLER)) == \
        '{"utterance": "'
    # in chain-of-thought mode the thought comes first: the opener is drawn, not forced
    assert forced_opening(narration_schema(act=Act.ACCEPT, price=75, role=Role.SELLER, cot=True,
                                           opener="Great")) == '{"thought": "'
    with pytest.raises(ValueError, match="one word"):
        narration_pattern(Act.COUNTER_PRICE, 75, Role.SELLER, opener="How (about")


def test_a_literal_prefix_stops_short_of_a_quantified_character():
    assert literal_prefix("^How about[a-z]") == "How about"
    assert literal_prefix("^ab*") == "a" and literal_prefix("^ab{2}") == "a"
    assert literal_prefix("^[^$0-9]{0,40}") == "" and literal_prefix("no anchor") == ""
    assert literal_prefix(None) == ""


def test_schemas_with_openers_compile_into_llama_cpp_grammars():
    llama_cpp = pytest.importorskip("llama_cpp")
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    from bot.llm.models import embedded_model_path

    llm = llama_cpp.Llama(str(embedded_model_path()), vocab_only=True, verbose=False)
    try:
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        for move, words in OPENERS.items():
            role, act = move.split(" ", 1)
            for word in words:
                schema = narration_schema(act=Act(act), price=1250, role=Role(role), sentences=1,
                                          opener=word)
                gbnf = json_schema_to_gbnf(json.dumps(schema)).encode()
                sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf, b"root")
                assert sampler, (move, word)
                llama_cpp.llama_sampler_free(sampler)
    finally:
        llm.close()


# ---- the second round


def said(text: str, logprob: float = -1.0) -> ChatResult:
    return ChatResult(json.dumps({"utterance": text}), extra={"logprob": logprob, "logprob_tokens": 10})


def repeating_state(scenario, policy):
    """The seller has said "I'm willing to do $190 for it." and is to counter again."""
    turns = (Turn(Role.BUYER, Act.INIT_PRICE, 150, "would you take $150?"),
             Turn(Role.SELLER, Act.COUNTER_PRICE, 190, "I'm willing to do $190 for it."),
             Turn(Role.BUYER, Act.COUNTER_PRICE, 155, "how about $155?"))
    state = DialogueState(scenario, Role.SELLER, turns, 15)
    return state, policy.plan(state)


async def test_when_every_candidate_repeats_a_second_round_begins_with_words_people_use(scenario):
    policy = ConcessionPolicy("fair", seed=0)
    state, plan = repeating_state(scenario, policy)
    assert plan.act is Act.COUNTER_PRICE
    p = f"${plan.price:,.0f}"
    again = said(f"I'm willing to do {p} for it.")
    backend = FakeBackend([again, again, said(f"How about {p}?", -6.0),
                           said(f"That's close, {p} then.", -3.0)])
    agent = LLMAgent("s", backend, policy=policy, candidates=2, sampling=Sampling(seed=0),
                     sentences=1, rephrase=True)
    turn = await agent.respond(state)
    assert not turn.fallback and turn.repaired and turn.utterance == f"That's close, {p} then."
    assert agent.stats["repaired"] == 1 and agent.stats["fallback"] == 0
    patterns = [c.schema["properties"]["utterance"]["pattern"] for c in backend.calls]
    assert [re.match(r"\^([A-Za-z']*)", pt).group(1) for pt in patterns] == ["", "", "How", "That's"]
    # the second round's candidates keep seeds of their own
    assert len({c.sampling.seed for c in backend.calls}) == 4


async def test_without_rephrase_or_a_usable_second_round_the_template_is_said(scenario):
    policy = ConcessionPolicy("fair", seed=0)
    state, plan = repeating_state(scenario, policy)
    p = f"${plan.price:,.0f}"
    again = said(f"I'm willing to do {p} for it.")
    agent = LLMAgent("s", FakeBackend([again, again]), policy=policy, candidates=2,
                     sampling=Sampling(seed=0), sentences=1)
    turn = await agent.respond(state)
    assert turn.fallback and "you already said that" in turn.guard and "among 2 candidates" in turn.guard
    backend = FakeBackend([again, again, said("How about it?"), said(f"The price is {p}. No other price specified.")])
    agent = LLMAgent("s", backend, policy=policy, candidates=2, sampling=Sampling(seed=0),
                     sentences=1, rephrase=True)
    turn = await agent.respond(state)
    assert turn.fallback and not turn.repaired and "among 4 candidates" in turn.guard
    assert len(backend.calls) == 4


class _Timed(FakeBackend):
    """Answers call k with reply k after delays[k] seconds (slept on the event loop, so a stopped
    call ends at once); with ``together``, decodes one seat's requests together, as
    llamacpp-batched does (the agent asks every candidate at once). Counts calls stopped."""

    def __init__(self, replies, delays, *, together: bool = False) -> None:
        super().__init__()
        self.replies, self.delays, self.stopped = list(replies), list(delays), 0
        self.decodes_together = together

    async def chat(self, messages, **kwargs):
        k = len(self.calls)
        self.calls.append(None)
        try:
            await asyncio.sleep(self.delays[k])
        except asyncio.CancelledError:
            self.stopped += 1
            raise
        return self.replies[k]


async def test_a_reply_budget_skips_a_rephrased_round_that_cannot_end_in_time(scenario):
    """A person waiting: round one took 2 x 0.1 s of a 0.3 s budget, so a round as long would end
    past it; the template is said at once instead, and nothing more is drawn."""
    policy = ConcessionPolicy("fair", seed=0)
    state, plan = repeating_state(scenario, policy)
    again = said(f"I'm willing to do ${plan.price:,.0f} for it.")
    backend = FakeBackend([again, again, said(f"How about ${plan.price:,.0f}?")], delay=0.1)
    agent = LLMAgent("s", backend, policy=policy, candidates=2, sampling=Sampling(seed=0),
                     sentences=1, rephrase=True, reply_budget_s=0.3)
    turn = await agent.respond(state)
    assert turn.fallback and not turn.repaired and "no time for a rephrased round" in turn.guard
    assert len(backend.calls) == 2 and agent.stats["over_budget"] == 1
    assert (turn.act, turn.price) == (plan.act, plan.price)  # only the words change


@pytest.mark.parametrize("together", [False, True])
async def test_a_rephrased_round_past_the_budget_is_stopped_and_the_template_said(scenario, together):
    policy = ConcessionPolicy("fair", seed=0)
    state, plan = repeating_state(scenario, policy)
    p = f"${plan.price:,.0f}"
    again = said(f"I'm willing to do {p} for it.")
    replies = [again, again, said(f"How about {p}?"), said(f"That's close, {p} then.")]
    backend = _Timed(replies, [0, 0, 30, 30], together=together)
    agent = LLMAgent("s", backend, policy=policy, candidates=2, sampling=Sampling(seed=0),
                     sentences=1, rephrase=True, reply_budget_s=0.5)
    turn = await asyncio.wait_for(agent.respond(state), 10)
    assert turn.fallback and "not finished within the 0.5 s reply budget" in turn.guard
    assert agent.stats["over_budget"] == 1 and agent.stats["repaired"] == 0
    assert backend.stopped == (2 if together else 1)  # the sequential round stops at its first
    # within the budget the same round is said, as without one
    agent = LLMAgent("s", _Timed(replies, [0, 0, 0.01, 0.01], together=together), policy=policy,
                     candidates=2, sampling=Sampling(seed=0), sentences=1, rephrase=True,
                     reply_budget_s=20)
    turn = await agent.respond(state)
    assert turn.repaired and not turn.fallback and agent.stats["over_budget"] == 0


@pytest.mark.parametrize("together", [False, True])
async def test_the_budget_says_the_best_candidate_finished_in_time(scenario, together):
    """Round one: the likelier candidate comes too late, so the one finished is said; with none
    finished, the template (never a late reply); without a budget, the likeliest."""
    policy = ConcessionPolicy("fair", seed=0)
    state, plan = repeating_state(scenario, policy)
    p = f"${plan.price:,.0f}"
    replies = [said(f"I could do {p} for it.", -6.0), said(f"That's close, {p} then.", -1.0)]

    def agent(delays, budget):
        backend = _Timed(replies, delays, together=together)
        return backend, LLMAgent("s", backend, policy=policy, candidates=2, sampling=Sampling(seed=0),
                                 sentences=1, reply_budget_s=budget)

    backend, late = agent([0.01, 30], 0.5)
    turn = await asyncio.wait_for(late.respond(state), 10)
    assert not turn.fallback and turn.utterance == f"I could do {p} for it."
    assert late.stats["over_budget"] == 1 and backend.stopped == 1
    backend, none_in_time = agent([30, 30], 0.3)
    turn = await asyncio.wait_for(none_in_time.respond(state), 10)
    assert turn.fallback and (turn.act, turn.price) == (plan.act, plan.price)
    assert "2 of 2 candidates not finished within the 0.3 s reply budget" in turn.guard
    backend, unbounded = agent([0.01, 0.2], None)
    assert (await unbounded.respond(state)).utterance == f"That's close, {p} then."
    _, spent = agent([0, 0], 0.0)  # the whole budget waited in line: the template at once
    turn = await asyncio.wait_for(spent.respond(state), 5)
    assert turn.fallback and "2 of 2 candidates not finished within the 0 s" in turn.guard


async def test_a_discord_game_s_agent_gets_what_is_left_of_the_bot_s_reply_budget(tmp_path):
    from bot_fakes import make_config, start_bot

    for budget, waited, left in ((2.5, 0.0, 2.5), (2.5, 1.0, 1.5), (2.5, 4.0, 0.0), (0, 1.0, None)):
        cfg = make_config(bot={"reply_budget_s": budget})
        bot = await start_bot(tmp_path, cfg, db=tmp_path / "b.db",
                              backend_factory=lambda spec: FakeBackend())
        try:
            games = bot.get_cog("Games")
            live = type("Live", (), {"agent_name": "llm-buyer", "human_role": Role.SELLER,
                                     "seed": 0, "personality": None})()
            assert games.build_agent(live, "seat0", waited=waited).reply_budget_s == left
        finally:
            await bot.close()


def test_rephrase_is_an_agent_setting(tmp_path):
    from bot.config import load_config

    path = tmp_path / "haggle.toml"
    path.write_text('[agents.s]\nkind = "llm"\nrole = "seller"\npolicy = "hybrid"\ncandidates = 4\n'
                    'rephrase = true\n')
    assert load_config(path).agents["s"].rephrase is True
    from bot.errors import ConfigError

    for bad in ('rephrase = "yes"\npolicy = "hybrid"\ncandidates = 4\n',
                'rephrase = true\npolicy = "hybrid"\n',          # one candidate: re-asked instead
                'rephrase = true\npolicy = "llm"\ncandidates = 4\n'):
        path.write_text('[agents.s]\nkind = "llm"\nrole = "seller"\n' + bad)
        with pytest.raises(ConfigError, match="rephrase"):
            load_config(path)


@pytest.mark.parametrize("backend_kind", ["llamacpp", "llamacpp-batched"])
async def test_the_narrator_writes_on_from_the_opener_it_is_given(backend_kind):
    """On the real narrator, per seat and batched: the reply begins with the opener (decoded with
    the prompt), states the price, and the rest is the model's."""
    pytest.importorskip("llama_cpp")
    from bot.llm.batch_engine import BatchedEngine
    from bot.llm.batched import BatchedLlamaCppBackend
    from bot.llm.llamacpp import LlamaCppBackend
    from tests.conftest import REPO
    from tests.llm_fixtures import SELLER_MESSAGES, embedded_gguf

    embedded_gguf()
    lora = REPO / "adapters" / "narrator"
    engine = None
    if backend_kind == "llamacpp":
        backend = LlamaCppBackend("embedded", name="narrator", n_ctx=512, n_threads=1, lora=lora)
    else:
        engine = BatchedEngine("embedded", name="narrator", n_slots=1, n_ctx=512, n_threads=1,
                               seed=0, lora=lora)
        backend = BatchedLlamaCppBackend(engine, name="narrator", timeout_s=120)
    try:  # max_tokens past what the grammar lets a reply hold (~200 characters): never cut off
        for opener in ("How", "That's"):
            schema = narration_schema(act=Act.COUNTER_PRICE, price=150, role=Role.SELLER,
                                      sentences=1, opener=opener)
            reply = await backend.chat(SELLER_MESSAGES, schema=schema,
                                       sampling=Sampling(temperature=0.7, max_tokens=220, seed=3))
            utterance = json.loads(reply.text)["utterance"]
            assert utterance.startswith(opener) and "$150" in utterance, utterance
            assert re.match(schema["properties"]["utterance"]["pattern"], utterance)
            assert reply.extra["logprob_tokens"] > 0  # ranked on what the model wrote
    finally:
        await backend.aclose()
        if engine is not None:
            engine.close()
