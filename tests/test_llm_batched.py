"""The batched llama.cpp backend (bot/llm/batched.py): its scheduler on the real embedded model.

One engine of three sequences serves most tests (1 thread, short windows); tests that need
other settings make their own. The real-model negotiation contract runs in
tests/test_llm_negotiations.py, parametrized over both llama.cpp backends.
"""

from __future__ import annotations

import asyncio
import json

import llama_cpp
import pytest

from bot.errors import ConfigError, ContextOverflow, ModelError, ModelTimeout
from bot.llm.base import Sampling
from bot.llm.batch_engine import BatchedEngine
from bot.llm.batch_slots import Slot, choose_slot
from bot.llm.batched import BatchedLlamaCppBackend, acquire_engine, release_engine
from bot.llm.models import ModelSpec
from bot.llm.pool import ModelPool
from bot.llm.sampling import forced_opening
from bot.negotiation.prompts import narration_schema, render_narration, reply_schema
from bot.negotiation.turns import Act, Role, Turn
from bot.queues import ModelQueues
from tests.llm_fixtures import REPLY_SCHEMA, SELLER_MESSAGES, check_reply, embedded_gguf

SHORT = Sampling(temperature=0.7, max_tokens=60, seed=7)
# The grammar forbids closing the story before 2000 characters: it runs to max_tokens.
ENDLESS = {"type": "object", "properties": {"story": {"type": "string", "minLength": 2000}},
           "required": ["story"]}
STORY = [{"role": "user", "content": "Tell me a long story about a bicycle."}]


def enum_schema(*words: str) -> dict:
    return {"type": "object", "properties": {"word": {"enum": list(words)}}, "required": ["word"]}


@pytest.fixture(scope="module")
def engine():
    embedded_gguf()  # skip, saying how to install it, when the embedded model is absent
    engine = BatchedEngine("embedded", name="smol-batched", n_slots=3, n_ctx=512, n_threads=1,
                           seed=0)
    yield engine
    engine.close()


def seats(engine: BatchedEngine, n: int) -> list[BatchedLlamaCppBackend]:
    return [BatchedLlamaCppBackend(engine, name=f"seat{i}", timeout_s=120) for i in range(n)]


# --------------------------------------------------------------------------- pure scheduling


def test_choose_slot_prefers_the_seats_own_then_a_free_one_sharing_most_then_the_oldest():
    a, b, c = object(), object(), object()
    slots = [Slot(0, [1, 2, 3], owner=a, last_used=5.0), Slot(1, [1, 2], owner=None),
             Slot(2, [1, 2, 3, 4], owner=None, last_used=1.0)]
    assert choose_slot(slots, a, [1, 2, 3, 4]).seq == 0            # its own, though 2 shares more
    assert choose_slot(slots, b, [1, 2, 3, 4, 5]).seq == 2         # free, longest prefix
    slots[1].owner, slots[2].owner = b, c
    assert choose_slot(slots, object(), [9]).seq == 1              # all owned: least recently used
    for slot in slots:
        slot.request = object()  # type: ignore[assignment]
    assert choose_slot(slots, a, [1]) is None                      # every sequence busy: wait


def test_config_pool_and_queue_know_the_batched_backend(tmp_path):
    spec = ModelSpec.from_table("big", {"backend": "llamacpp-batched", "n_slots": 12,
                                        "n_ctx": 1024}, tmp_path)
    assert (spec.backend, spec.n_slots, spec.n_ctx) == ("llamacpp-batched", 12, 1024)
    with pytest.raises(ConfigError, match=r"models.x.n_slots: not used by backend 'llamacpp'"):
        ModelSpec.from_table("x", {"n_slots": 4}, tmp_path)
    with pytest.raises(ConfigError, match="n_slots: must be at most 256"):
        ModelSpec(name="x", backend="llamacpp-batched", n_slots=1000)
    made = []
    pool = ModelPool({"big": spec}, factory=lambda s: made.append(s) or object())
    assert pool.backend("big", "w0/buyer") is not pool.backend("big", "w1/buyer")  # seat each
    queues = ModelQueues(slots=1, per_model={"big": spec.n_slots})
    assert (queues.get("big").slots, queues.get("other").slots) == (12, 1)


def test_flash_attention_and_forced_openings_are_settings_of_both_in_process_backends(tmp_path):
    from bot.llm.llamacpp import LlamaCppBackend

    batched = ModelSpec.from_table("b", {"backend": "llamacpp-batched"}, tmp_path)
    engine = acquire_engine(batched, tmp_path)  # not loaded: construction reads no file
    try:
        assert engine.flash_attn is True and engine.forced_openings is True  # CPU defaults
    finally:
        release_engine(engine)
    assert BatchedEngine(n_gpu_layers=-1).flash_attn is False  # no FA kernels in the CUDA build
    off = ModelSpec.from_table("b", {"backend": "llamacpp-batched", "flash_attn": False,
                                     "forced_openings": False}, tmp_path)
    engine = acquire_engine(off, tmp_path)
    try:
        assert engine.flash_attn is False and engine.forced_openings is False
    finally:
        release_engine(engine)
    assert LlamaCppBackend.from_spec(ModelSpec(name="s")).flash_attn is False  # as a Llama
    assert LlamaCppBackend.from_spec(ModelSpec(name="s", flash_attn=True)).flash_attn is True
    spec = ModelSpec.from_table("s", {"forced_openings": False}, tmp_path)
    assert LlamaCppBackend.from_spec(spec).forced_openings is False
    assert LlamaCppBackend.from_spec(ModelSpec(name="s")).forced_openings is True
    with pytest.raises(ConfigError, match="models.x.forced_openings: must be true or false"):
        ModelSpec.from_table("x", {"forced_openings": 0}, tmp_path)
    with pytest.raises(ConfigError, match="models.x.flash_attn: must be true or false, not 'yes'"):
        ModelSpec.from_table("x", {"flash_attn": "yes"}, tmp_path)
    with pytest.raises(ConfigError, match="models.x.flash_attn: not used by backend 'openai'"):
        ModelSpec.from_table("x", {"backend": "openai", "url": "http://h/v1", "flash_attn": True},
                             tmp_path)


def test_kv_type_is_a_batched_setting_that_needs_flash_attention(tmp_path):
    spec = ModelSpec.from_table("b", {"backend": "llamacpp-batched", "kv_type": "q8_0"}, tmp_path)
    engine = acquire_engine(spec, tmp_path)  # not loaded: construction reads no file
    try:
        assert engine.kv_type == "q8_0" and engine.flash_attn is True
    finally:
        release_engine(engine)
    with pytest.raises(ConfigError, match="models.b.kv_type: 'q5_1' is not one of f16, q8_0, q4_0"):
        ModelSpec.from_table("b", {"backend": "llamacpp-batched", "kv_type": "q5_1"}, tmp_path)
    with pytest.raises(ConfigError, match="models.b.kv_type: 'q8_0' needs flash_attn = true"):
        ModelSpec.from_table("b", {"backend": "llamacpp-batched", "kv_type": "q8_0",
                                   "flash_attn": False}, tmp_path)
    with pytest.raises(ConfigError, match="models.s.kv_type: not used by backend 'llamacpp'"):
        ModelSpec.from_table("s", {"kv_type": "q8_0"}, tmp_path)
    with pytest.raises(ModelError, match="kv_type 'q8_0' needs flash_attn"):
        BatchedEngine(n_gpu_layers=-1, kv_type="q8_0")  # FA is off by default with GPU layers


# --------------------------------------------------------------------------- on the real model


@pytest.mark.parametrize("flash_attn", [False, True])
async def test_one_sequence_draws_what_its_own_instance_draws(engine, flash_attn):
    """Same prompt, schema, seed and attention: the batched sampler chain is llama-cpp-python's
    (with the reply's opening drawn token by token, as a Llama draws it)."""
    from bot.llm.llamacpp import LlamaCppBackend

    alone = BatchedEngine("embedded", name=f"smol-fa{flash_attn}", n_slots=3, n_ctx=512,
                          n_threads=1, seed=0, flash_attn=flash_attn, forced_openings=False)
    (seat,) = seats(alone, 1)
    reference = LlamaCppBackend("embedded", name="ref", n_ctx=512, n_threads=1,
                                flash_attn=flash_attn, forced_openings=False)
    try:
        for schema in (REPLY_SCHEMA, None):
            ours = await seat.chat(SELLER_MESSAGES, schema=schema, sampling=SHORT)
            theirs = await reference.chat(SELLER_MESSAGES, schema=schema, sampling=SHORT)
            assert ours.text == theirs.text and ours.text
            assert (ours.prompt_tokens, ours.completion_tokens, ours.finish_reason) == \
                (theirs.prompt_tokens, theirs.completion_tokens, theirs.finish_reason)
            if schema is not None:  # the model's likelihood of its reply, for ranking candidates
                assert ours.extra["logprob_tokens"] == theirs.extra["logprob_tokens"] > 0
                assert ours.extra["logprob"] == pytest.approx(theirs.extra["logprob"], abs=1e-3)
    finally:
        await reference.aclose()
        await seat.aclose()
        alone.close()
    check_reply(json.loads((await seats(engine, 1)[0].chat(
        SELLER_MESSAGES, schema=REPLY_SCHEMA, sampling=SHORT)).text))


def test_the_opening_a_schema_forces_is_what_its_grammar_and_the_prompts_write():
    narration = narration_schema(act=Act.COUNTER_PRICE, price=62.0, role=Role.SELLER)
    assert forced_opening(narration) == '{"utterance": "'
    assert forced_opening(narration_schema(cot=True)) == '{"thought": "'
    assert forced_opening(enum_schema("yes", "no")) == '{"word": '   # an enum's quote is its own
    assert forced_opening(reply_schema()) == ""                      # anyOf: nothing forced
    assert forced_opening({"type": "object", "properties": {"a": {"type": "string"}}}) == ""
    assert forced_opening(None) == ""
    turn = Turn(role=Role.SELLER, act=Act.COUNTER_PRICE, price=62.0, utterance="I can do $62.")
    assert render_narration(turn).startswith(forced_opening(narration))  # the cache stays append-only


async def test_a_forced_opening_is_decoded_with_the_prompt_as_the_narrator_writes_it():
    """The schema's opening goes in with the prompt, in the 5 tokens the tokenizer (and so
    training) splits it into, with no step of its own, and the grammar holds. Drawn, each of its
    tokens is a step: the narrator draws it in 7 ('{"', 'u', 'tt', 'era', 'nce', '":', ' "'), the
    base model character by character, so its words after it can differ from the forced reply's."""
    from tests.conftest import REPO

    greedy = Sampling(temperature=0.0, max_tokens=60)
    schema = narration_schema(act=Act.COUNTER_PRICE, price=62.0, role=Role.SELLER)
    replies = []
    for forced in (True, False):
        engine = BatchedEngine("embedded", name=f"narrator-{forced}", n_slots=1, n_ctx=512,
                               n_threads=1, seed=0, forced_openings=forced,
                               lora=REPO / "adapters" / "narrator")
        (seat,) = seats(engine, 1)
        try:
            reply = await seat.chat(SELLER_MESSAGES, schema=schema, sampling=greedy)
            replies.append((reply, engine.steps))
        finally:
            await seat.aclose()
            engine.close()
    (forced, forced_steps), (drawn, drawn_steps) = replies
    for reply in (forced, drawn):
        assert reply.text.startswith('{"utterance": "')
        assert "$62" in json.loads(reply.text)["utterance"]
    # the 5 opening tokens ('{"', 'utter', 'ance', '":', ' "') are the reply's, not the prompt's
    assert forced.prompt_tokens_evaluated == drawn.prompt_tokens_evaluated
    # one step per drawn token; forced, none for the opening's 5 (at most one more prompt chunk)
    prompt_steps = (forced_steps - (forced.completion_tokens - 5), drawn_steps - drawn.completion_tokens)
    assert prompt_steps[0] - prompt_steps[1] in (0, 1) and prompt_steps[1] >= 1


async def test_an_opening_the_grammar_refuses_is_an_error_not_a_reply(engine, monkeypatch):
    import bot.llm.batch_engine as batch_engine

    monkeypatch.setattr(batch_engine, "forced_opening", lambda schema: '{"nope": ')
    (seat,) = seats(engine, 1)
    try:
        with pytest.raises(ModelError, match="grammar refused the reply's opening"):
            await seat.chat(SELLER_MESSAGES, schema=enum_schema("yes", "no"), sampling=SHORT)
    finally:
        await seat.aclose()


async def test_each_sequence_keeps_its_own_grammar(engine):
    a, b, c = seats(engine, 3)
    plain = [{"role": "user", "content": "Say hello to me in plain English, no JSON please."}]
    long = Sampling(max_tokens=50, seed=3)  # long enough for the three to share steps

    def word_then_essay(*words: str) -> dict:
        return {"type": "object", "required": ["word", "essay"],
                "properties": {"word": {"enum": list(words)},
                               "essay": {"type": "string", "minLength": 500}}}

    engine.max_active = 0
    first, second, free = await asyncio.gather(
        a.chat(plain, schema=word_then_essay("xylophone-7", "qq"), sampling=long),
        b.chat(plain, schema=word_then_essay("zebra-9"), sampling=long),
        c.chat(plain, sampling=long))
    assert engine.max_active == 3  # decoded in one batch
    squeezed = [r.text.replace(" ", "").replace("\n", "") for r in (first, second)]
    assert squeezed[0].startswith(('{"word":"xylophone-7","essay":"', '{"word":"qq","essay":"'))
    assert squeezed[1].startswith('{"word":"zebra-9","essay":"')
    assert free.text.strip() and not free.text.lstrip().startswith("{")
    assert {first.extra["sequence"], second.extra["sequence"], free.extra["sequence"]} == {0, 1, 2}
    for seat in (a, b, c):
        await seat.aclose()


async def test_a_request_joins_the_running_batch(engine):
    long, short = seats(engine, 2)
    story = asyncio.create_task(long.chat(STORY, schema=ENDLESS, sampling=Sampling(max_tokens=80)))
    steps = engine.steps
    while engine.steps < steps + 5:  # the story is decoding
        await asyncio.sleep(0.01)
    reply = await short.chat(SELLER_MESSAGES, schema=enum_schema("yes", "no"),
                             sampling=Sampling(max_tokens=8, seed=1))
    assert not story.done()  # the short one joined, finished, and left while the story ran on
    assert json.loads(reply.text)["word"] in ("yes", "no")
    told = await story
    assert told.finish_reason == "length" and told.completion_tokens == 80
    await long.aclose()
    await short.aclose()


async def test_a_timed_out_sequence_leaves_the_others_alone(engine):
    doomed, fine = seats(engine, 2)
    results = await asyncio.gather(
        doomed.chat(STORY, schema=ENDLESS, sampling=Sampling(max_tokens=400), timeout=0.5),
        fine.chat(SELLER_MESSAGES, schema=REPLY_SCHEMA, sampling=SHORT),
        return_exceptions=True)
    assert isinstance(results[0], ModelTimeout) and results[0].seconds == 0.5
    check_reply(json.loads(results[1].text))
    # the abandoned sequence stopped early: its KV holds far fewer than 400 generated tokens
    await asyncio.wrap_future(engine.release(object()))  # a round trip through the decode thread
    held = max(engine.sequence_tokens().values())
    assert held < 400
    again = await doomed.chat(SELLER_MESSAGES, schema=REPLY_SCHEMA, sampling=SHORT)
    check_reply(json.loads(again.text))
    await doomed.aclose()
    await fine.aclose()


async def test_each_seat_reuses_its_own_prefix_when_conversations_interleave(engine):
    buyer, seller = seats(engine, 2)
    system = {"role": "system", "content": "You sell a used road bike listed at $200. " * 6}
    talks = {buyer: [system, {"role": "user", "content": "Would you take $120?"}],
             seller: [{"role": "system", "content": "You buy a lamp listed at $40. " * 6},
                      {"role": "user", "content": "It is yours for $38."}]}
    firsts = {}
    for seat, messages in talks.items():  # one turn each, in turn
        firsts[seat] = await seat.chat(messages, schema=REPLY_SCHEMA, sampling=SHORT)
    for seat, messages in talks.items():
        longer = messages + [{"role": "assistant", "content": firsts[seat].text},
                             {"role": "user", "content": "Hmm. Meet me halfway?"}]
        second = await seat.chat(longer, schema=REPLY_SCHEMA, sampling=SHORT)
        assert second.prompt_tokens > firsts[seat].prompt_tokens > 60
        # the first turn's whole prompt is reused: only the reply and the new message decode
        assert second.prompt_tokens_evaluated <= second.prompt_tokens - firsts[seat].prompt_tokens
        assert second.extra["sequence"] == firsts[seat].extra["sequence"]
        again = await seat.chat(longer, schema=REPLY_SCHEMA, sampling=SHORT)
        assert again.prompt_tokens_evaluated == 1  # all cached: the last token for its logits
    await buyer.aclose()
    await seller.aclose()


async def test_a_closed_seats_sequence_is_free_and_its_cache_serves_the_next_conversation(engine):
    (seat,) = seats(engine, 1)
    reply = await seat.chat(SELLER_MESSAGES, schema=REPLY_SCHEMA, sampling=SHORT)
    seq = reply.extra["sequence"]
    assert engine.sequence_tokens()[seq] >= reply.prompt_tokens
    await seat.aclose()
    assert engine.slots[seq].owner is None
    assert engine.sequence_tokens()[seq] >= reply.prompt_tokens  # kept, as a prefix cache
    (newcomer,) = seats(engine, 1)
    again = await newcomer.chat(SELLER_MESSAGES, schema=REPLY_SCHEMA, sampling=SHORT)
    assert again.prompt_tokens_evaluated == 1 and again.text == reply.text
    await newcomer.aclose()


def opening(item: str, ask: str) -> list[dict]:
    """A long system prompt about ``item`` (about 130 tokens), then one question."""
    return [{"role": "system", "content": f"You sell {item}. " * 10},
            {"role": "user", "content": ask}]


async def test_a_prompt_that_begins_like_another_sequences_cache_starts_from_a_copy(engine):
    """The copied cells are what the prompt would have computed itself: the greedy reply is a
    one-sequence engine's, though only the differing tail was decoded."""
    greedy = Sampling(temperature=0, max_tokens=24)
    item = "a walnut writing desk listed at $310"
    first, second = seats(engine, 2)
    a = await first.chat(opening(item, "Would you take $200?"), sampling=greedy)
    copied = engine.copied_tokens
    b = await second.chat(opening(item, "Is the desk still for sale?"), sampling=greedy)
    assert b.extra["sequence"] != a.extra["sequence"]  # first still holds its own
    assert engine.copied_tokens - copied >= 100
    assert b.prompt_tokens_evaluated <= b.prompt_tokens - 100
    alone = BatchedEngine("embedded", name="alone", n_slots=1, n_ctx=512, n_threads=1)
    try:
        ref = await BatchedLlamaCppBackend(alone).chat(opening(item, "Is the desk still for sale?"),
                                                       sampling=greedy)
    finally:
        alone.close()
    assert ref.prompt_tokens_evaluated == ref.prompt_tokens == b.prompt_tokens
    assert b.text == ref.text and b.text.strip()
    await first.aclose()
    await second.aclose()


async def test_prompts_that_open_alike_at_once_read_their_common_beginning_once(engine):
    trio = seats(engine, 3)
    item = "a brass floor lamp listed at $85"
    replies = await asyncio.gather(*(
        seat.chat(opening(item, f"Would you take ${50 + 5 * i}?"), sampling=Sampling(max_tokens=8, seed=i))
        for i, seat in enumerate(trio)))
    assert len({r.extra["sequence"] for r in replies}) == 3
    whole = replies[0].prompt_tokens
    assert whole > 120
    # one of them read the whole prompt; the two others waited for it and read their tails
    assert sum(r.prompt_tokens_evaluated for r in replies) <= whole + 2 * 20
    for seat in trio:
        await seat.aclose()


async def test_a_hybrid_agents_candidates_decode_together_and_read_the_prompt_once():
    """pick = "likeliest" on the batched backend: the candidates are asked at once, each on its
    own sequence, and the turn's prompt is read once (the others start from a copy)."""
    from bot.negotiation.agents import DialogueState
    from bot.negotiation.llm_agent import LLMAgent
    from bot.negotiation.policy import ConcessionPolicy
    from bot.negotiation.scenario import Scenario

    embedded_gguf()
    engine = BatchedEngine("embedded", name="candidates", n_slots=3, n_ctx=1536, n_threads=1, seed=0)
    seat = BatchedLlamaCppBackend(engine, name="seller", timeout_s=120)
    scenario = Scenario.build(id="lamp", title="Brass floor lamp", listing_price=85, buyer_target=60,
                              description="Works, new shade.", category="furniture")
    state = DialogueState(scenario, Role.SELLER,
                          (Turn(Role.BUYER, Act.INIT_PRICE, 60, "would you take $60?"),), 15)
    agent = LLMAgent("seller", seat, policy=ConcessionPolicy("fair", seed=0), candidates=3,
                     sampling=Sampling(temperature=0.7, max_tokens=60, seed=3))
    try:
        turn = await agent.respond(state)
        assert engine.max_active == 3  # all three candidates in the same steps
        assert {s.owner for s in engine.slots} == {seat}
        assert turn.prompt_tokens > 150
        # one candidate read the prompt; the two others copied it and read its last token
        assert turn.prompt_tokens_evaluated <= turn.prompt_tokens + 2 * 8
        assert turn.act is not None and (turn.fallback or "$" in turn.utterance)
    finally:
        await seat.aclose()
        engine.close()


async def test_a_q8_0_cache_answers_in_about_half_the_memory():
    embedded_gguf()
    sizes = {}
    for kv_type in ("f16", "q8_0"):
        engine = BatchedEngine("embedded", name=f"kv-{kv_type}", n_slots=2, n_ctx=512, n_threads=1,
                               seed=0, kv_type=kv_type)
        seat = BatchedLlamaCppBackend(engine, name="seat", timeout_s=120)
        try:
            reply = await seat.chat(SELLER_MESSAGES, schema=REPLY_SCHEMA, sampling=SHORT)
            check_reply(json.loads(reply.text))
            sizes[kv_type] = llama_cpp.llama_state_get_size(engine._ctx.ctx)
        finally:
            await seat.aclose()
            engine.close()
    assert 0.4 < sizes["q8_0"] / sizes["f16"] < 0.7, sizes


async def test_slots_are_bounded_a_request_waits_for_one_or_times_out():
    embedded_gguf()
    engine = BatchedEngine("embedded", name="one-slot", n_slots=1, n_ctx=512, n_threads=1)
    first, second, third = seats(engine, 3)
    try:
        await engine.start()
        story = asyncio.create_task(first.chat(STORY, schema=ENDLESS,
                                               sampling=Sampling(max_tokens=40)))
        while engine.steps < 2:  # the story holds the only sequence
            await asyncio.sleep(0.01)
        waited = asyncio.create_task(second.chat(SELLER_MESSAGES, schema=REPLY_SCHEMA,
                                                 sampling=SHORT))
        with pytest.raises(ModelTimeout):  # the only sequence is busy the whole time
            await third.chat(SELLER_MESSAGES, sampling=SHORT, timeout=0.2)
        told, reply = await asyncio.gather(story, waited)
        assert told.completion_tokens == 40
        check_reply(json.loads(reply.text))
        assert engine.max_active == 1
        assert engine.slots[0].owner is second  # the story's conversation was evicted
        assert reply.prompt_tokens_evaluated > reply.prompt_tokens / 2
    finally:
        engine.close()
    with pytest.raises(ModelError, match="closed"):
        await second.chat(SELLER_MESSAGES)


async def test_a_prompt_longer_than_a_sequence_is_a_context_overflow(engine):
    (seat,) = seats(engine, 1)
    long = [{"role": "user", "content": "bike " * 600}]
    counted = await seat.count_tokens(long)
    assert counted > seat.n_ctx == 512
    with pytest.raises(ContextOverflow) as caught:
        await seat.chat(long, sampling=SHORT)
    assert (caught.value.prompt_tokens, caught.value.n_ctx) == (counted, 512)


async def test_seats_share_an_engine_per_file_adapter_and_settings(tmp_path):
    spec = ModelSpec(name="a", backend="llamacpp-batched", n_slots=2, n_ctx=256, n_threads=1)
    first, second = acquire_engine(spec), acquire_engine(spec)
    other = acquire_engine(ModelSpec(name="b", backend="llamacpp-batched", n_slots=3, n_ctx=256))
    try:
        assert first is second and other is not first
    finally:
        assert release_engine(first) is False  # the second user keeps it
        assert release_engine(second) is True
        assert release_engine(other) is True


async def test_a_file_that_is_no_lora_adapter_fails_with_its_path(tmp_path):
    embedded_gguf()
    from tests.llm_fixtures import write_tiny_gguf

    bad = write_tiny_gguf(tmp_path / "not-an-adapter.gguf")
    engine = BatchedEngine("embedded", n_slots=1, n_ctx=256, n_threads=1, lora=bad)
    try:
        with pytest.raises(ModelError, match="could not load the LoRA adapter .*not-an-adapter"):
            await engine.start()
    finally:
        engine.close()


async def test_a_release_right_after_a_failed_load_is_done_at_once(tmp_path):
    """A failed load's thread lives on a moment after it has said so: a seat released in that
    moment (the pool closing after a failed probe) must not wait for a loop that never runs.
    The moment is held open here: the failed thread is stood in for by a live one."""
    import threading

    from tests.llm_fixtures import write_tiny_gguf

    engine = BatchedEngine(write_tiny_gguf(tmp_path / "broken.gguf"), name="dead", n_slots=1,
                           n_ctx=256, n_threads=1)
    try:
        with pytest.raises(ModelError):
            await engine.start()
        engine._thread.join()
        engine._thread = threading.current_thread()  # alive, as the failed one is for a moment
        assert engine.release(object()).result(timeout=5) is None
        with pytest.raises(ModelError, match="no model loaded"):
            engine.submit(object())
    finally:
        engine._thread = None
        engine.close()


def write_lora(path, *, scale: float) -> str:
    """A LoRA adapter (GGUF) for SmolLM2-135M's q projections in layers 0-3: B = scale x noise."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string(gguf.Keys.General.TYPE, "adapter")
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 4.0)
    rng = np.random.default_rng(0)
    for layer in range(4):
        writer.add_tensor(f"blk.{layer}.attn_q.weight.lora_a",
                          rng.standard_normal((4, 576)).astype(np.float32))
        writer.add_tensor(f"blk.{layer}.attn_q.weight.lora_b",
                          (scale * rng.standard_normal((576, 4))).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(path)


async def test_an_engine_serves_its_lora_adapter(tmp_path, engine):
    """A zero adapter changes nothing; a strong one changes the greedy reply (it is applied)."""
    greedy = Sampling(temperature=0, max_tokens=12)
    fruit = [{"role": "user", "content": "Name a fruit."}]
    (seat,) = seats(engine, 1)
    base = (await seat.chat(fruit, sampling=greedy)).text
    await seat.aclose()
    replies = []
    for name, scale in (("zero", 0.0), ("strong", 1.0)):
        adapted = BatchedEngine("embedded", n_slots=1, n_ctx=512, n_threads=1,
                                lora=write_lora(tmp_path / f"{name}.gguf", scale=scale))
        try:
            replies.append((await BatchedLlamaCppBackend(adapted).chat(fruit, sampling=greedy)).text)
        finally:
            adapted.close()
    assert replies[0] == base and replies[1] != base
