"""Bounded model slots shared by games and the tournaments started from Discord.

The bot keeps one model pool (bot/llm/pool.py, capped at ``[bot] max_model_instances``) and one
waiting line per model (bot/queues.py, ``model_slots`` slots each). Games take a slot for each
turn. A tournament started with ``/tournament run`` gets no pool of its own: each of its agents'
model calls takes a *background* ticket on the same line (served only when no person waits, so
games keep their turn), runs on the slot's instance, and gives the slot back. A tournament thus
never adds an instance; when every slot is busy (or every instance the cap allows is busy with
another model) its turns wait.

    slots = ModelSlots(bot.queues, bot.factory.pool)
    factory = AgentFactory(cfg, pool=slots.tournament_pool())   # closing it closes nothing shared
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from bot.errors import ModelCapacity
from bot.llm.base import ChatBackend, ChatResult, Message, Sampling
from bot.llm.pool import ModelPool
from bot.queues import ModelQueues

LLAMA_BACKENDS = ("llamacpp", "llamacpp-batched")
CAPACITY_RETRY_S = 0.25


def slot_seat(model: str, slot: int, *, batched: bool = False) -> str:
    """The pool seat of a model slot: games' turns and tournaments' calls share it, hence the
    instance (a batched model gives tournaments sequences of their own)."""
    return f"discord/{model}/tournament{slot}" if batched else f"discord/{model}/slot{slot}"


class ModelSlots:
    """Model calls in the background, one slot at a time, on the bot's shared instances."""

    def __init__(self, queues: ModelQueues, pool: ModelPool) -> None:
        self.queues = queues
        self.pool = pool

    @contextlib.asynccontextmanager
    async def use(self, model: str) -> AsyncIterator[ChatBackend]:
        """The backend of a free slot of ``model``, waiting in the background line for one."""
        ticket = self.queues.get(model).enter(background=True)
        try:
            slot = await ticket.wait()
            batched = self.pool.specs[model].backend == "llamacpp-batched"
            seat = slot_seat(model, slot, batched=batched)
            while True:  # every instance busy with other models' turns: wait, don't fail
                try:
                    backend = await self.pool.acquire(model, seat)
                    break
                except ModelCapacity:
                    await asyncio.sleep(CAPACITY_RETRY_S)
            try:
                yield backend
            finally:
                self.pool.unlease(model, seat)
        finally:
            ticket.release()

    def tournament_pool(self) -> SlotPool:
        return SlotPool(self)


class SlotBackend:
    """A ChatBackend that owns no model: each call runs on a slot ``ModelSlots`` lends."""

    def __init__(self, slots: ModelSlots, model: str) -> None:
        self.slots = slots
        self.model = model
        self.name = model

    async def chat(self, messages: Sequence[Message], *, schema: Mapping[str, Any] | None = None,
                   sampling: Sampling = Sampling(), timeout: float | None = None) -> ChatResult:
        async with self.slots.use(self.model) as backend:
            return await backend.chat(messages, schema=schema, sampling=sampling, timeout=timeout)

    async def probe(self) -> None:
        async with self.slots.use(self.model) as backend:
            await backend.probe()

    async def aclose(self) -> None:
        """Nothing to close: the instances belong to the bot's pool."""


class SlotPool:
    """What an AgentFactory sees as its pool during a Discord tournament: llama.cpp models come
    as SlotBackends, HTTP models as the bot's shared backend; closing it closes nothing."""

    def __init__(self, slots: ModelSlots) -> None:
        self._slots = slots
        self.specs = slots.pool.specs
        self._handed: dict[str, SlotBackend] = {}

    def backend(self, model: str, seat: str) -> ChatBackend:
        spec = self._slots.pool._spec(model)
        if spec.backend not in LLAMA_BACKENDS:
            return self._slots.pool.backend(model, seat)  # HTTP: shared, no instance
        handed = self._handed.get(model)
        if handed is None:
            handed = self._handed[model] = SlotBackend(self._slots, model)
        return handed

    async def release(self, model: str, seat: str) -> None:
        """Seats hold nothing here."""

    @property
    def backends(self) -> list[ChatBackend]:
        return list(self._handed.values())

    async def aclose(self) -> None:
        """The shared instances stay with the bot."""

