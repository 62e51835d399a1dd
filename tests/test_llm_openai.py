"""The OpenAI-compatible HTTP backend: against llama-cpp-python's real server (embedded model),
and against tiny aiohttp servers on loopback that misbehave on purpose."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request

import pytest
from aiohttp import web

from bot.errors import ModelError, ModelTimeout
from bot.llm.base import Sampling
from bot.llm.openai_http import OpenAIHTTPBackend, response_format
from tests.llm_fixtures import REPLY_SCHEMA, SELLER_MESSAGES, check_reply, embedded_gguf, free_port

SHORT = Sampling(temperature=0.7, max_tokens=60, seed=7)


# --------------------------------------------------------------------------- the real server


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """`python -m llama_cpp.server` with the embedded model on a free loopback port."""
    pytest.importorskip("uvicorn", reason="llama-cpp-python's server extra is not installed "
                                          "(pip install 'llama-cpp-python[server]')")
    model = embedded_gguf()
    port = free_port()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    with log.open("w") as sink:  # a file, not a pipe: a full pipe would stall the server
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host",
             "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1"],
            stdout=sink, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}/v1"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy
    probe = urllib.request.Request(
        base + "/chat/completions", headers={"Content-Type": "application/json"},
        data=json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}).encode())
    deadline = time.monotonic() + 90
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
            try:  # ready = answers a one-token chat (its first one is slow: it warms up)
                with direct.open(probe, timeout=60) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not come up within 90 s: "
                            f"{log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.llm
async def test_schema_constrained_chat_through_llama_cpp_server(llama_server):
    backend = OpenAIHTTPBackend(llama_server, name="server", schema_style="json_object")
    try:
        result = await backend.chat(SELLER_MESSAGES, schema=REPLY_SCHEMA, sampling=SHORT)
    finally:
        await backend.aclose()
    check_reply(json.loads(result.text))
    assert result.prompt_tokens and result.prompt_tokens > 20 and result.completion_tokens
    assert result.finish_reason == "stop"


@pytest.mark.llm
@pytest.mark.slow
async def test_llm_negotiations_through_the_server(llama_server):
    """The real-model negotiation contract (tests/test_llm_negotiations.py), with both agents
    talking to llama.cpp's server over HTTP instead of an in-process model."""
    from bot.agreemate import load_agreemate_scenarios
    from bot.negotiation.llm_agent import LLMAgent
    from bot.negotiation.runner import run_negotiation
    from tests.test_llm_negotiations import check_contract

    backend = OpenAIHTTPBackend(llama_server, name="server", schema_style="json_object", timeout_s=120)
    sampling = Sampling(temperature=0.7, max_tokens=160, seed=0)
    try:
        buyer = LLMAgent("http-buyer", backend, sampling=sampling)
        seller = LLMAgent("http-seller", backend, sampling=sampling)
        recs = [await run_negotiation(sc, buyer, seller) for sc in load_agreemate_scenarios()[:2]]
    finally:
        await backend.aclose()
    check_contract(recs)
    model_turns = [t for r in recs for t in r.turns if not t.fallback]
    assert len(model_turns) >= sum(len(r.turns) for r in recs) // 2
    assert all(t.prompt_tokens and t.completion_tokens for t in model_turns)


@pytest.mark.llm
async def test_llama_cpp_server_rejects_the_openai_schema_form(llama_server):
    """Why schema_style exists: this server answers HTTP 500 to the json_schema form."""
    backend = OpenAIHTTPBackend(llama_server, name="server", schema_style="json_schema")
    try:
        with pytest.raises(ModelError, match=r"HTTP 500.*try another schema_style"):
            await backend.chat(SELLER_MESSAGES, schema=REPLY_SCHEMA, sampling=SHORT)
    finally:
        await backend.aclose()


# --------------------------------------------------------------------------- loopback fakes


@pytest.fixture
async def fake_server():
    """An aiohttp app on loopback; tests set ``state['handler']`` and read ``state['requests']``."""
    state: dict = {"requests": []}

    async def chat_completions(request: web.Request) -> web.StreamResponse:
        state["requests"].append({"headers": dict(request.headers), "body": await request.json()})
        return await state["handler"](request)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat_completions)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    state["url"] = f"http://127.0.0.1:{port}/v1"
    yield state
    await runner.cleanup()


def completion(content, **payload):
    return web.json_response({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        **payload,
    })


async def test_http_500_is_a_model_error_with_the_status(fake_server):
    async def handler(request):
        return web.Response(status=500, text="model crashed")

    fake_server["handler"] = handler
    backend = OpenAIHTTPBackend(fake_server["url"], name="flaky")
    try:
        with pytest.raises(ModelError, match=r"flaky: .* answered HTTP 500: model crashed"):
            await backend.chat(SELLER_MESSAGES)
    finally:
        await backend.aclose()


async def test_slow_server_times_out(fake_server):
    async def handler(request):
        await asyncio.sleep(1)
        return completion("too late")

    fake_server["handler"] = handler
    backend = OpenAIHTTPBackend(fake_server["url"], name="slow", timeout_s=30)
    try:
        with pytest.raises(ModelTimeout, match=r"no reply from .* within 0\.2 s") as caught:
            await backend.chat(SELLER_MESSAGES, timeout=0.2)
    finally:
        await backend.aclose()
    assert caught.value.seconds == 0.2


async def test_connection_refused_is_a_model_error():
    backend = OpenAIHTTPBackend(f"http://127.0.0.1:{free_port()}/v1", name="down")
    try:
        with pytest.raises(ModelError, match=r"cannot connect to .*is the server running"):
            await backend.chat(SELLER_MESSAGES, timeout=5)
    finally:
        await backend.aclose()


async def test_request_shape_usage_and_api_key(fake_server, monkeypatch):
    async def handler(request):
        return completion('{"act": "offer"}', usage={
            "prompt_tokens": 50, "completion_tokens": 6,
            "prompt_tokens_details": {"cached_tokens": 40}})

    fake_server["handler"] = handler
    monkeypatch.setenv("HAGGLE_TEST_API_KEY", "sk-test-123")
    backend = OpenAIHTTPBackend(fake_server["url"], name="gpt", model="gpt-x",
                                schema_style="json_schema", api_key_env="HAGGLE_TEST_API_KEY")
    try:
        result = await backend.chat(SELLER_MESSAGES, schema=REPLY_SCHEMA,
                                    sampling=Sampling(max_tokens=33, seed=4))
    finally:
        await backend.aclose()
    assert (result.text, result.prompt_tokens, result.completion_tokens) == ('{"act": "offer"}', 50, 6)
    assert result.prompt_tokens_evaluated == 10
    sent = fake_server["requests"][0]
    assert sent["headers"]["Authorization"] == "Bearer sk-test-123"
    body = sent["body"]
    assert (body["model"], body["max_tokens"], body["seed"]) == ("gpt-x", 33, 4)
    assert body["messages"] == SELLER_MESSAGES
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "reply", "schema": REPLY_SCHEMA, "strict": True}}
    assert "top_k" not in body  # not an OpenAI parameter
    assert "sk-test-123" not in repr(backend)


async def test_json_object_style_and_empty_replies(fake_server):
    async def handler(request):
        return completion(None)  # a model that emitted nothing

    fake_server["handler"] = handler
    backend = OpenAIHTTPBackend(fake_server["url"] + "/chat/completions", name="local")
    try:
        result = await backend.chat(SELLER_MESSAGES, schema=REPLY_SCHEMA)
        await backend.chat(SELLER_MESSAGES)  # no schema: no response_format
    finally:
        await backend.aclose()
    assert result.text == "" and result.prompt_tokens is None
    assert result.prompt_tokens_evaluated is None
    first, second = (r["body"] for r in fake_server["requests"])
    assert first["response_format"] == {"type": "json_object", "schema": REPLY_SCHEMA}
    assert first["top_k"] == Sampling().top_k and "response_format" not in second


async def test_a_reply_that_is_not_a_completion_is_a_model_error(fake_server):
    async def handler(request):
        return web.json_response({"error": "nope"})

    fake_server["handler"] = handler
    backend = OpenAIHTTPBackend(fake_server["url"], name="odd")
    try:
        with pytest.raises(ModelError, match="not a chat completion"):
            await backend.chat(SELLER_MESSAGES)
    finally:
        await backend.aclose()


def test_missing_api_key_variable_is_reported_by_name(monkeypatch):
    monkeypatch.delenv("HAGGLE_ABSENT_KEY", raising=False)
    with pytest.raises(ModelError, match="HAGGLE_ABSENT_KEY"):
        OpenAIHTTPBackend("http://127.0.0.1:1/v1", api_key_env="HAGGLE_ABSENT_KEY")


def test_schema_style_none_sends_no_constraint():
    assert response_format(REPLY_SCHEMA, "none") is None
    assert response_format(None, "json_schema") is None
