"""Backends for agent seats: who gets their own llama.cpp instance and who shares one.

llama-cpp-python re-evaluates only the part of a prompt its instance has not just seen. Each
agent's prompt grows turn by turn, so an instance per agent seat keeps per-turn cost flat (a
couple of dozen new tokens), while two agents alternating on one instance make it re-read the
whole history every turn. The pool therefore gives each (model, seat) its own backend, unless
the model is configured ``shared = true`` (memory-tight setups: one copy of the weights and
KV cache for every seat). HTTP backends keep no prompt state here and are always shared.

Backend "llamacpp-batched" (bot/llm/batched.py) keeps the per-seat handles but puts them all
on one engine per (model file, adapter, settings): each seat is a sequence of one shared
context, decoded in one batch with the others, so N games share one copy of the model.
``release`` ends one seat (a finished Discord game) and frees its sequence.

``max_instances`` caps the llama.cpp instances the pool keeps alive (the bot's
``[bot] max_model_instances``; a batched model's shared engine counts once). The bot's
turns ``await acquire(...)`` a seat's backend and ``unlease`` it after: a new instance past the
cap first closes an idle one (not leased, least recently used) and raises ModelCapacity when
every instance is in use. ``peak`` is the most instances that were ever alive at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

from bot.errors import ConfigError, ModelCapacity
from bot.llm.base import ChatBackend
from bot.llm.models import ModelSpec


def make_backend(spec: ModelSpec) -> ChatBackend:
    """A new, not yet loaded backend for one ``[models.NAME]`` entry."""
    if spec.backend == "llamacpp":
        from bot.llm.llamacpp import LlamaCppBackend

        return LlamaCppBackend.from_spec(spec)
    if spec.backend == "llamacpp-batched":
        from bot.llm.batched import BatchedLlamaCppBackend

        return BatchedLlamaCppBackend.from_spec(spec)
    if spec.backend == "openai":
        from bot.llm.openai_http import OpenAIHTTPBackend

        return OpenAIHTTPBackend.from_spec(spec)
    raise ConfigError(f"models.{spec.name}.backend: unknown backend {spec.backend!r}")


class ModelPool:
    """Hands out one backend per (model, seat), or per model when shared; closes them all."""

    def __init__(
        self,
        specs: Mapping[str, ModelSpec],
        *,
        factory: Callable[[ModelSpec], ChatBackend] = make_backend,
        max_instances: int | None = None,
    ) -> None:
        self.specs = dict(specs)
        self._factory = factory
        self._backends: dict[tuple[str, str | None], ChatBackend] = {}
        self.max_instances = max_instances
        self.peak = 0
        self.refused = 0  # instances refused at the cap
        self._leases: dict[tuple[str, str | None], int] = {}
        self._used: dict[tuple[str, str | None], int] = {}
        self._clock = itertools.count()

    def _key(self, spec: ModelSpec, seat: str) -> tuple[str, str | None]:
        shared = spec.shared or spec.backend not in ("llamacpp", "llamacpp-batched")
        return (spec.name, None if shared else seat)

    def _spec(self, model: str) -> ModelSpec:
        spec = self.specs.get(model)
        if spec is None:
            known = ", ".join(sorted(self.specs)) or "none"
            raise ConfigError(f"unknown model {model!r}: add a [models.{model}] table "
                              f"(configured: {known})")
        return spec

    def _instances(self, keys) -> int:
        """llama.cpp instances behind ``keys``: one per llamacpp seat, one per batched model."""
        plain = sum(1 for name, _ in keys if self.specs[name].backend == "llamacpp")
        return plain + len({name for name, _ in keys if self.specs[name].backend == "llamacpp-batched"})

    @property
    def instances(self) -> int:
        """llama.cpp instances alive now (a batched model's engine counts once)."""
        return self._instances(self._backends)

    def _adds_instance(self, key: tuple[str, str | None]) -> bool:
        return key not in self._backends and self._instances([*self._backends, key]) > self.instances

    def backend(self, model: str, seat: str) -> ChatBackend:
        """The backend agent ``seat`` (e.g. "buyer", "table3/seller") uses for ``model``.
        Raises ModelCapacity when it would be a new instance past ``max_instances``."""
        spec = self._spec(model)
        key = self._key(spec, seat)
        backend = self._backends.get(key)
        if backend is None:
            if (self.max_instances is not None and self._adds_instance(key)
                    and self.instances >= self.max_instances):
                self.refused += 1
                raise ModelCapacity(self.max_instances)
            backend = self._backends[key] = self._factory(spec)
            self.peak = max(self.peak, self.instances)
        self._used[key] = next(self._clock)
        return backend

    async def acquire(self, model: str, seat: str) -> ChatBackend:
        """``backend(model, seat)``, leased until ``unlease``: at the cap, an idle instance
        (no lease, least recently used) is closed first to make room."""
        spec = self._spec(model)
        key = self._key(spec, seat)
        if self.max_instances is not None and self._adds_instance(key):
            while self.instances >= self.max_instances:
                idle = [k for k in self._backends if not self._leases.get(k)
                        and self.specs[k[0]].backend in ("llamacpp", "llamacpp-batched")]
                if not idle:
                    break  # backend() refuses, saying so
                victim = min(idle, key=lambda k: self._used.get(k, -1))
                backend = self._backends.pop(victim)
                self._used.pop(victim, None)
                await backend.aclose()
        backend = self.backend(model, seat)
        self._leases[key] = self._leases.get(key, 0) + 1
        return backend

    def unlease(self, model: str, seat: str) -> None:
        """The end of an ``acquire``: the instance may be closed to make room again."""
        spec = self.specs.get(model)
        if spec is None:
            return
        key = self._key(spec, seat)
        held = self._leases.get(key, 0) - 1
        if held > 0:
            self._leases[key] = held
        else:
            self._leases.pop(key, None)

    async def release(self, model: str, seat: str) -> None:
        """Close the backend of ``seat`` (if one was handed out and is not shared): a batched
        model's sequence for that seat is freed; the next ``backend`` call makes a new one."""
        spec = self.specs.get(model)
        if spec is None:
            return
        key = self._key(spec, seat)
        if key[1] is None:
            return
        backend = self._backends.pop(key, None)
        self._used.pop(key, None)
        if backend is not None:
            await backend.aclose()

    @property
    def backends(self) -> list[ChatBackend]:
        """Every backend handed out so far, once each."""
        return list(self._backends.values())

    async def aclose(self) -> None:
        """Close every backend handed out (freeing models), even if one fails to close."""
        backends, self._backends = list(self._backends.values()), {}
        errors: list[BaseException] = []
        for backend in backends:
            try:
                await backend.aclose()
            except Exception as exc:  # close the rest, then report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]
