"""The in-process llama.cpp backend on the real embedded model (SmolLM2-135M, Q4_1).

Kept few and short: the CPU generates ~70 tokens/s. One instance serves the module; the backend
keeps no event-loop state, so each test's own loop can use it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from bot.errors import ContextOverflow, ModelError, ModelTimeout
from bot.llm.base import Sampling
from bot.llm.llamacpp import LlamaCppBackend, gpu_offload_supported
from bot.llm.sampling import forced_opening
from tests.llm_fixtures import (
    REPLY_SCHEMA,
    SELLER_MESSAGES,
    check_reply,
    embedded_gguf,
    write_tiny_gguf,
)

pytestmark = pytest.mark.llm

SHORT = Sampling(temperature=0.7, max_tokens=60, seed=7)


@pytest.fixture(scope="module")
def smol():
    embedded_gguf()  # skip, saying how to install it, when the embedded model is absent
    backend = LlamaCppBackend("embedded", name="smol", n_ctx=1024, timeout_s=60)
    yield backend
    asyncio.run(backend.aclose())


async def test_schema_constrained_reply_is_valid_json_of_the_schema(smol):
    result = await smol.chat(SELLER_MESSAGES, schema=REPLY_SCHEMA, sampling=SHORT)
    check_reply(json.loads(result.text))
    assert result.finish_reason == "stop"
    assert result.prompt_tokens == await smol.count_tokens(SELLER_MESSAGES)
    assert result.completion_tokens and result.seconds > 0


@pytest.mark.parametrize("checked", [True, False], ids=["checked-sampler", "stock-sampler"])
async def test_grammar_holds_when_the_model_wants_to_say_something_else(smol, checked):
    """The schema wins over the prompt, with haggle's checked sampler and llama-cpp-python's."""
    schema = {"type": "object", "properties": {"word": {"enum": ["xylophone-7", "qq"]}},
              "required": ["word"]}
    plain = [{"role": "user", "content": "Say hello to me in plain English, no JSON please."}]
    smol.checked_grammar = checked
    try:
        result = await smol.chat(plain, schema=schema, sampling=SHORT)
    finally:
        smol.checked_grammar = True
    assert json.loads(result.text)["word"] in ("xylophone-7", "qq")


async def test_extending_the_conversation_evaluates_only_the_new_suffix(smol):
    """prompt_tokens_evaluated is what llama.cpp decoded, checked against its own counters."""
    system = {"role": "system", "content": "You sell a used road bike listed at $200. " * 8}
    first_messages = [system, {"role": "user", "content": "Would you take $120?"}]
    first = await smol.chat(first_messages, schema=REPLY_SCHEMA, sampling=SHORT)
    before = smol.perf_counters()["n_p_eval"]
    second_messages = first_messages + [
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "That is too much for me. Would you take $140 then?"},
    ]
    second = await smol.chat(second_messages, schema=REPLY_SCHEMA, sampling=SHORT)
    decoded = smol.perf_counters()["n_p_eval"] - before
    assert second.prompt_tokens > first.prompt_tokens > 100
    # llama.cpp's own prompt-eval count, which also holds the reply's forced opening ('{"act": ',
    # decoded with the prompt; counted as the reply's tokens)
    opening = smol._llm.tokenize(forced_opening(REPLY_SCHEMA).encode(), add_bos=False)
    assert len(opening) == 4 and second.prompt_tokens_evaluated == decoded - len(opening)
    # Only the new suffix (the reply and the new message) is decoded, however long the reply was
    # (its length depends on the platform's float rounding): the first prompt is a cached prefix.
    assert second.prompt_tokens_evaluated <= second.prompt_tokens - first.prompt_tokens + 1
    assert second.prompt_tokens_evaluated < second.prompt_tokens - 100
    again = await smol.chat(second_messages, schema=REPLY_SCHEMA, sampling=SHORT)
    assert again.prompt_tokens_evaluated <= 1  # the whole prompt was cached


async def test_a_forced_opening_goes_in_with_the_prompt_as_the_narrator_writes_it():
    """Per seat as on the batched engine: the narration schema's opening ('{"utterance": "') is
    decoded with the prompt in the 5 tokens the tokenizer (and so training) splits it into, not
    drawn token by token: none of its tokens is a decode of its own. (Drawn under the grammar
    the narrator may split it otherwise, e.g. 7 tokens '{"', 'u', 'tt', 'era', 'nce', '":', ' "',
    so its words after the opening can differ from the forced reply's.)"""
    from bot.negotiation.prompts import narration_schema
    from bot.negotiation.turns import Act, Role
    from tests.conftest import REPO

    schema = narration_schema(act=Act.COUNTER_PRICE, price=62.0, role=Role.SELLER)
    greedy = Sampling(temperature=0.0, max_tokens=60)
    replies = []
    for forced in (True, False):
        narrator = LlamaCppBackend("embedded", name=f"narrator-{forced}", n_ctx=512, n_threads=1,
                                   lora=REPO / "adapters" / "narrator", forced_openings=forced)
        try:
            reply = await narrator.chat(SELLER_MESSAGES, schema=schema, sampling=greedy)
            replies.append((reply, narrator.perf_counters()))
        finally:
            await narrator.aclose()
    (forced, forced_counts), (drawn, drawn_counts) = replies
    for reply in (forced, drawn):
        assert reply.text.startswith('{"utterance": "')
        assert "$62" in json.loads(reply.text)["utterance"]
    assert forced.prompt_tokens == drawn.prompt_tokens
    assert forced.prompt_tokens_evaluated == drawn.prompt_tokens_evaluated
    # the 5 opening tokens are the reply's (completion tokens) but went in with the prompt batch
    assert forced_counts["n_p_eval"] == drawn_counts["n_p_eval"] + 5
    assert forced_counts["n_eval"] == forced.completion_tokens - 5
    assert drawn_counts["n_eval"] == drawn.completion_tokens  # each drawn token: its own decode


async def test_an_opening_the_grammar_refuses_is_an_error_and_the_backend_recovers(smol, monkeypatch):
    import bot.llm.llamacpp as llamacpp

    monkeypatch.setattr(llamacpp, "forced_opening", lambda schema: '{"nope": ')
    with pytest.raises(ModelError, match="grammar refused the reply's opening"):
        await smol.chat(SELLER_MESSAGES, schema=REPLY_SCHEMA, sampling=SHORT)
    monkeypatch.undo()
    check_reply(json.loads((await smol.chat(SELLER_MESSAGES, schema=REPLY_SCHEMA,
                                            sampling=SHORT)).text))


async def test_timeout_abandons_the_call_and_the_backend_recovers(smol):
    # The grammar forbids closing the story before 2000 characters: left alone, this call
    # would decode all 600 tokens.
    endless = {"type": "object", "properties": {"story": {"type": "string", "minLength": 2000}},
               "required": ["story"]}
    story = [{"role": "user", "content": "Tell me a long story about a bicycle."}]
    decoded_before = smol.perf_counters()["n_eval"]
    with pytest.raises(ModelTimeout) as caught:
        await smol.chat(story, schema=endless, sampling=Sampling(max_tokens=600), timeout=0.3)
    assert caught.value.seconds == 0.3
    await smol.load()  # a no-op queued behind the abandoned call: returns once that stopped
    assert smol.perf_counters()["n_eval"] - decoded_before < 300  # it stopped early
    result = await smol.chat(SELLER_MESSAGES, schema=REPLY_SCHEMA, sampling=SHORT)
    check_reply(json.loads(result.text))


async def test_prompt_too_long_for_the_context_is_a_context_overflow(smol):
    long = [{"role": "user", "content": "bike " * 1200}]
    counted = await smol.count_tokens(long)
    assert counted > smol.n_ctx == 1024
    with pytest.raises(ContextOverflow) as caught:
        await smol.chat(long, sampling=SHORT)
    assert (caught.value.prompt_tokens, caught.value.n_ctx) == (counted, 1024)
    assert caught.value.max_tokens == SHORT.max_tokens


async def test_missing_and_corrupt_files_fail_at_load_with_the_path(tmp_path):
    cases = {
        tmp_path / "absent.gguf": "does not exist",
        tmp_path / "page.gguf": "not a GGUF file",
        tmp_path / "cut.gguf": "corrupt or truncated GGUF",
    }
    (tmp_path / "page.gguf").write_text("<html>rate limited</html>")
    whole = write_tiny_gguf(tmp_path / "whole.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(whole[: len(whole) // 2])
    for path, message in cases.items():
        backend = LlamaCppBackend(path)
        with pytest.raises(ModelError, match=message) as caught:
            await backend.load()
        assert str(path) in str(caught.value)
        await backend.aclose()


async def test_unsupported_architecture_names_it(tmp_path):
    backend = LlamaCppBackend(write_tiny_gguf(tmp_path / "odd.gguf", architecture="notarealarch"))
    with pytest.raises(ModelError, match=r"architecture 'notarealarch' is not supported.*"
                                         r"unknown model architecture"):
        await backend.load()
    await backend.aclose()


@pytest.mark.skipif(gpu_offload_supported(), reason="this llama-cpp-python build has GPU offload")
async def test_gpu_layers_on_a_cpu_only_build_warn(caplog):
    backend = LlamaCppBackend("embedded", name="gpu-wish", n_ctx=256, n_gpu_layers=-1)
    with caplog.at_level(logging.INFO, logger="bot.llm.llamacpp"):
        await backend.load()
    await backend.aclose()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "CPU-only" in warnings[0].getMessage()
    assert "GGML_CUDA" in warnings[0].getMessage()
    assert any("GPU offload not supported" in r.getMessage() for r in caplog.records)


async def test_two_instances_of_the_same_file_answer_side_by_side():
    first = LlamaCppBackend("embedded", name="a", n_ctx=512)
    second = LlamaCppBackend("embedded", name="b", n_ctx=512)
    try:
        replies = await asyncio.gather(
            first.chat(SELLER_MESSAGES, schema=REPLY_SCHEMA, sampling=SHORT),
            second.chat(SELLER_MESSAGES, schema=REPLY_SCHEMA, sampling=SHORT),
        )
        for reply in replies:
            check_reply(json.loads(reply.text))
        assert first._llm is not second._llm
    finally:
        await first.aclose()
        await second.aclose()
    with pytest.raises(ModelError, match="closed"):
        await first.chat(SELLER_MESSAGES)


async def test_event_loop_stays_responsive_during_a_call(smol):
    """Loading and generating run on the worker thread: the loop keeps ticking meanwhile."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    await smol.chat([{"role": "user", "content": "Describe a bicycle."}],
                    sampling=Sampling(max_tokens=40, seed=1))
    elapsed = time.perf_counter() - started
    task.cancel()
    # A blocked loop could not tick until the call was over (then at most once).
    assert elapsed > 0.1 and ticks >= 5
