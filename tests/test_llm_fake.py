"""The scripted fake backend, the backend factory and the per-seat model pool."""

from __future__ import annotations

import pytest

from bot.errors import ConfigError, ModelError, ModelTimeout
from bot.llm import ChatBackend, ModelPool, ModelSpec, Sampling, make_backend
from bot.llm.base import ChatResult
from bot.llm.fake import FakeBackend, Slow

MESSAGES = [{"role": "user", "content": "hello"}]


async def test_fake_replays_replies_in_order_and_records_calls():
    backend = FakeBackend(["one", ChatResult("two", prompt_tokens=7), lambda m: m[-1]["content"]])
    schema = {"type": "object"}
    assert (await backend.chat(MESSAGES)).text == "one"
    assert (await backend.chat(MESSAGES, schema=schema, sampling=Sampling(seed=3))).prompt_tokens == 7
    assert (await backend.chat([{"role": "user", "content": "echo"}], timeout=5)).text == "echo"
    assert [c.messages[-1]["content"] for c in backend.calls] == ["hello", "hello", "echo"]
    assert backend.calls[1].schema == schema and backend.calls[1].sampling.seed == 3
    assert backend.calls[2].timeout == 5 and backend.pending == 0
    assert isinstance(backend, ChatBackend)


async def test_fake_raises_scripted_errors_and_runs_out_loudly():
    backend = FakeBackend([ModelError("HTTP 500")])
    with pytest.raises(ModelError, match="HTTP 500"):
        await backend.chat(MESSAGES)
    with pytest.raises(ModelError, match="no scripted reply left for call #2"):
        await backend.chat(MESSAGES)
    backend.push("later")
    assert (await backend.chat(MESSAGES)).text == "later"
    assert (await FakeBackend(default="same").chat(MESSAGES)).text == "same"


async def test_fake_delay_runs_in_a_thread_and_times_out():
    backend = FakeBackend([Slow("slow", 0.05), Slow("too slow", 0.4), "fast"])
    assert (await backend.chat(MESSAGES)).text == "slow"
    with pytest.raises(ModelTimeout) as caught:
        await backend.chat(MESSAGES, timeout=0.1)
    assert caught.value.seconds == 0.1
    assert (await backend.chat(MESSAGES)).text == "fast"


async def test_closed_fake_refuses_calls():
    backend = FakeBackend(["x"])
    await backend.aclose()
    with pytest.raises(ModelError, match="closed"):
        await backend.chat(MESSAGES)


# --------------------------------------------------------------------------- pool and factory


def pool_of(*specs: ModelSpec) -> tuple[ModelPool, list[ModelSpec]]:
    made: list[ModelSpec] = []

    def factory(spec: ModelSpec) -> FakeBackend:
        made.append(spec)
        return FakeBackend(name=spec.name)

    return ModelPool({s.name: s for s in specs}, factory=factory), made


async def test_pool_gives_each_seat_its_own_instance_unless_shared():
    pool, made = pool_of(ModelSpec(name="own"), ModelSpec(name="tight", shared=True),
                         ModelSpec(name="remote", backend="openai", url="http://h/v1"))
    assert pool.backend("own", "buyer") is not pool.backend("own", "seller")
    assert pool.backend("own", "buyer") is pool.backend("own", "buyer")
    assert pool.backend("tight", "buyer") is pool.backend("tight", "seller")
    assert pool.backend("remote", "buyer") is pool.backend("remote", "seller")
    assert [s.name for s in made] == ["own", "own", "tight", "remote"]
    backends = pool.backends
    await pool.aclose()
    assert all(b.closed for b in backends) and pool.backends == []


def test_pool_rejects_unknown_models():
    pool, _ = pool_of(ModelSpec(name="default"))
    with pytest.raises(ConfigError, match=r"unknown model 'big'.*\[models\.big\].*default"):
        pool.backend("big", "buyer")


def test_make_backend_builds_the_configured_kind(monkeypatch):
    from bot.llm.llamacpp import LlamaCppBackend
    from bot.llm.openai_http import OpenAIHTTPBackend

    local = make_backend(ModelSpec(name="local", n_ctx=1024, seed=5, timeout_s=9))
    assert isinstance(local, LlamaCppBackend) and not local.loaded
    assert (local.n_ctx, local.seed, local.timeout_s, local.model_ref) == (1024, 5, 9, "embedded")
    monkeypatch.setenv("HAGGLE_TEST_KEY", "sk-secret")
    remote = make_backend(ModelSpec(name="r", backend="openai", url="http://h:1/v1/",
                                    api_key_env="HAGGLE_TEST_KEY", schema_style="json_schema"))
    assert isinstance(remote, OpenAIHTTPBackend)
    assert remote.url == "http://h:1/v1/chat/completions" and "sk-secret" not in repr(remote)
