"""A batched in-process llama.cpp backend: one model and one context serve many conversations.

``LlamaCppBackend`` (bot/llm/llamacpp.py) gives every agent seat its own llama.cpp instance,
which decodes one sequence at a time. Here one ``BatchedEngine`` holds the weights and one
context whose KV cache has ``n_slots`` sequences (``n_seq_max``), each ``n_ctx`` tokens long;
the seats get light ``BatchedLlamaCppBackend`` handles on it. Why it looks the way it does:

- One decode thread per engine, never the event loop. It owns the context: every
  ``llama_decode``, KV-cache edit and sampler call happens on it, so nothing needs a lock but
  the short hand-over of requests. Each step it admits the requests that arrived (continuous
  batching), puts the next tokens of *every* active sequence into one ``llama_batch`` (a
  generated token each, then prompt suffixes up to the batch budget), decodes once, and samples
  each sequence that produced logits with that sequence's own sampler chain.
- Prefix reuse per sequence: a sequence remembers the tokens its KV cache holds. A request
  keeps the longest common prefix, trims the rest (``llama_memory_seq_rm``) and decodes only the
  new suffix, so an agent's growing conversation costs its new turn, as with one instance per
  seat. A request goes to the sequence its seat (handle) used last; else to a sequence no seat
  holds (the one sharing the longest prefix); else it takes the least recently used idle one.
  Closing a handle (``aclose`` / ``ModelPool.release``) frees its sequence; what its KV holds
  stays as a prefix cache that another sequence may copy (batch_engine.py).
- Sampling is the one ``LlamaCppBackend`` uses, token for token: llama-cpp-python's chain
  (penalties, top-k, typical, top-p, min-p 0.05, temperature, a seeded dist) with haggle's
  checked grammar sampler, the chat template and JSON-schema grammar built by
  llama-cpp-python's own chat handler (captured, not re-implemented), and its stop rules (end of
  generation, the template's stop strings, max_tokens). With the same seed a sequence draws
  what its own instance would draw from the same logits; batched matrix products may round
  differently in the last bits, so outcomes are compared by the benchmark, not promised.
- Slots are bounded: when every sequence is busy a request waits for the next free one (its
  timeout runs meanwhile and ends it with ModelTimeout). A prompt that cannot fit a sequence's
  window raises ContextOverflow, like the other backend. A timed-out or cancelled request stops
  at the next step; the other sequences in the batch carry on.
- A LoRA adapter (GGUF) per engine (``llama_adapter_lora_init`` + ``llama_set_adapters_lora``
  apply to a whole context), so engines are keyed by (model file, adapter, settings): seats
  whose models name the same file, adapter and settings share one engine.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bot.errors import ContextOverflow, ModelError, ModelTimeout
from bot.llm.base import ChatResult, Message, Sampling
from bot.llm.batch_engine import BatchedEngine
from bot.llm.batch_slots import Request
from bot.llm.models import ModelSpec

# --------------------------------------------------------------------------- engines by key

_engines_lock = threading.Lock()
_engines: dict[tuple[Any, ...], tuple[BatchedEngine, int]] = {}


def engine_key(spec: ModelSpec, base_dir: str | Path | None = None) -> tuple[Any, ...]:
    """Seats share an engine when their models name the same file, adapter and settings."""
    return (str(Path(base_dir or ".").absolute()), spec.path, getattr(spec, "lora", None),
            spec.n_slots, spec.n_ctx, spec.n_threads, spec.n_gpu_layers, spec.chat_format,
            spec.seed, spec.batch_format, spec.flash_attn, spec.forced_openings, spec.kv_type)


def acquire_engine(spec: ModelSpec, base_dir: str | Path | None = None) -> BatchedEngine:
    key = engine_key(spec, base_dir)
    with _engines_lock:
        engine, users = _engines.get(key, (None, 0))
        if engine is None:
            engine = BatchedEngine(spec.path, name=spec.name, n_slots=spec.n_slots,
                                   n_ctx=spec.n_ctx, n_threads=spec.n_threads,
                                   n_gpu_layers=spec.n_gpu_layers, seed=spec.seed,
                                   chat_format=spec.chat_format, lora=getattr(spec, "lora", None),
                                   batch_format=spec.batch_format, kv_type=spec.kv_type,
                                   flash_attn=spec.flash_attn,
                                   forced_openings=spec.forced_openings,
                                   base_dir=base_dir,
                                   manifest_file=getattr(spec, "manifest_file", None),
                                   force_unverified=spec.force_unverified)
        _engines[key] = (engine, users + 1)
        engine._key = key  # type: ignore[attr-defined]
    return engine


def release_engine(engine: BatchedEngine) -> bool:
    """Drop one user of a shared engine; closes it (True) when it was the last."""
    key = getattr(engine, "_key", None)
    with _engines_lock:
        held = _engines.get(key) if key is not None else None
        if held is None or held[0] is not engine:
            last = True
        else:
            last = held[1] <= 1
            if last:
                del _engines[key]
            else:
                _engines[key] = (engine, held[1] - 1)
    if last:
        engine.close()
    return last


# --------------------------------------------------------------------------- the backend


class BatchedLlamaCppBackend:
    """ChatBackend for one seat on a shared ``BatchedEngine`` (its own sequence when it can).

    ``aclose`` ends the seat's conversation: its sequence is freed (its KV kept as a cache), and
    the engine closes with its last seat.
    """

    # Requests a seat makes at once (a hybrid agent's candidates) decode together, each on its
    # own sequence, the shared prompt copied rather than read again (bot/negotiation/llm_agent.py).
    decodes_together = True

    def __init__(self, engine: BatchedEngine, *, name: str | None = None,
                 timeout_s: float = 120.0, seed: int | None = None, shared: bool = False) -> None:
        self.engine = engine
        self.name = name or engine.name
        self.timeout_s = timeout_s
        self.seed = seed
        self._shared = shared  # the engine is released (closed with its last seat) on aclose
        self._closed = False

    @classmethod
    def from_spec(cls, spec: ModelSpec, *,
                  base_dir: str | Path | None = None) -> BatchedLlamaCppBackend:
        return cls(acquire_engine(spec, base_dir), name=spec.name, timeout_s=spec.timeout_s,
                   seed=spec.seed, shared=True)

    def __repr__(self) -> str:
        return f"BatchedLlamaCppBackend(name={self.name!r}, engine={self.engine!r})"

    async def load(self) -> None:
        if self._closed:
            raise ModelError(f"{self.name}: the backend is closed")
        await self.engine.start()

    async def probe(self) -> None:
        """The health check a tournament runs first (AgentFactory.probe): loading the model."""
        await self.load()

    @property
    def loaded(self) -> bool:
        return self.engine.loaded

    @property
    def n_ctx(self) -> int:
        """One conversation's window in tokens (the sequence's, not the whole context's)."""
        return self.engine.n_ctx_seq

    async def count_tokens(self, messages: Sequence[Message]) -> int:
        await self.load()
        return len(self.engine.prepare(messages, None).prompt)

    async def chat(self, messages: Sequence[Message], *, schema: Mapping[str, Any] | None = None,
                   sampling: Sampling = Sampling(),  # noqa: B008 - frozen, as in the protocol
                   timeout: float | None = None) -> ChatResult:
        """One completion decoded in the engine's shared batch; the same errors as
        ``LlamaCppBackend.chat`` (ContextOverflow, ModelTimeout, ModelError)."""
        await self.load()
        engine = self.engine
        limit = self.timeout_s if timeout is None else timeout
        loop = asyncio.get_running_loop()
        try:
            prepared = await loop.run_in_executor(None, engine.prepare, list(messages), schema)
        except ValueError as exc:  # a template or schema the chat handler rejects
            raise ModelError(f"{self.name}: cannot build the request: {exc}") from exc
        if len(prepared.prompt) + sampling.max_tokens > engine.n_ctx_seq:
            raise ContextOverflow(prompt_tokens=len(prepared.prompt),
                                  max_tokens=sampling.max_tokens, n_ctx=engine.n_ctx_seq,
                                  model=self.name)
        seed = sampling.seed if sampling.seed is not None else self.seed
        if seed is None:
            seed = engine._rng.randint(0, 2**32 - 1)
        request = Request(owner=self, prepared=prepared, sampling=sampling, seed=seed,
                           loop=loop, future=loop.create_future())
        engine.submit(request)
        try:
            return await asyncio.wait_for(asyncio.shield(request.future), limit)
        except TimeoutError:
            request.cancelled = True  # the decode thread drops it at its next step
            request.future.add_done_callback(_retrieve)
            raise ModelTimeout(
                f"{self.name}: no reply within {limit:g} s; the call was abandoned (raise "
                f"timeout_s in the model's config if the machine is slow)", seconds=limit,
            ) from None
        except asyncio.CancelledError:
            request.cancelled = True
            request.future.add_done_callback(_retrieve)
            raise

    async def aclose(self) -> None:
        """End this seat's conversation (its sequence is freed); the last seat closes the engine."""
        if self._closed:
            return
        self._closed = True
        await asyncio.wrap_future(self.engine.release(self))
        if self._shared:
            await asyncio.get_running_loop().run_in_executor(None, release_engine, self.engine)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
