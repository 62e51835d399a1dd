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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from bot.errors import ConfigError
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
    ) -> None:
        self.specs = dict(specs)
        self._factory = factory
        self._backends: dict[tuple[str, str | None], ChatBackend] = {}

    def _key(self, spec: ModelSpec, seat: str) -> tuple[str, str | None]:
        shared = spec.shared or spec.backend not in ("llamacpp", "llamacpp-batched")
        return (spec.name, None if shared else seat)

    def backend(self, model: str, seat: str) -> ChatBackend:
        """The backend agent ``seat`` (e.g. "buyer", "table3/seller") uses for ``model``."""
        spec = self.specs.get(model)
        if spec is None:
            known = ", ".join(sorted(self.specs)) or "none"
            raise ConfigError(f"unknown model {model!r}: add a [models.{model}] table "
                              f"(configured: {known})")
        key = self._key(spec, seat)
        backend = self._backends.get(key)
        if backend is None:
            backend = self._backends[key] = self._factory(spec)
        return backend

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
