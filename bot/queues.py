"""Fair, bounded waiting lines in front of the models.

A model instance answers one call at a time (llama.cpp is not thread-safe, and on a CPU two
calls side by side are no faster than one after the other), so the bot gives each configured
model ``slots`` instances and lets games take turns on them. People who arrive while every
slot is busy wait in line, first come first served, and are told their place ("you're 3rd
in line"). The line is bounded: past ``capacity`` waiting games, ``enter`` raises QueueFull
and the bot says the model is busy instead of leaving the person in silence.

Tournaments started from Discord take their turns on the same slots (bot/model_slots.py) as
*background* tickets: they wait in a line of their own, not counted against ``capacity``, and
a freed slot goes to them when no person waits, or, while people keep waiting, after every
``BACKGROUND_EVERY`` people's turns: games keep their turn (one tournament turn at most per
that many of theirs) and tournaments still move.

Pure asyncio, no Discord: the games cog (bot/cogs/games.py) and the benchmark use it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from bot.errors import HaggleError

BACKGROUND_EVERY = 4  # while people wait: one tournament turn after this many people's turns


class QueueFull(HaggleError):
    """Every slot of a model is busy and its waiting line is full."""

    def __init__(self, model: str, waiting: int) -> None:
        super().__init__(f"the {model} model is busy and {waiting} games are already waiting; "
                         f"try again in a minute")
        self.model = model
        self.waiting = waiting


class Ticket:
    """One game's place in a model's line: ``await wait()`` for a slot, ``release()`` after.

    Use it as ``try: slot = await ticket.wait(); ... finally: ticket.release()``; releasing
    twice, or releasing a ticket still waiting (a cancelled wait), is safe.
    """

    def __init__(self, queue: ModelQueue, *, background: bool = False) -> None:
        self._queue = queue
        self.background = background
        self.slot: int | None = None
        self._granted: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._released = False

    @property
    def position(self) -> int:
        """0 once a slot is ours; else 1 for the next in line, 2 for the one after, ..."""
        return self._queue._position(self)

    async def wait(self) -> int:
        """The slot index, once it is this ticket's turn."""
        if self.slot is not None:
            return self.slot
        try:
            return await asyncio.shield(self._granted)
        except asyncio.CancelledError:
            self.release()  # gives the slot on if it was granted while we were being cancelled
            raise

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._queue._release(self)


@dataclass(frozen=True)
class QueueState:
    model: str
    slots: int
    busy: int
    waiting: int
    capacity: int
    background: int = 0  # tournament turns waiting (not counted against capacity)


class ModelQueue:
    """``slots`` instances of one model and a line of at most ``capacity`` waiting games."""

    def __init__(self, model: str, *, slots: int = 1, capacity: int = 10) -> None:
        if slots < 1:
            raise ValueError(f"a model needs at least one slot, got {slots}")
        self.model = model
        self.slots = slots
        self.capacity = capacity
        self._free = list(range(slots))
        self._waiting: deque[Ticket] = deque()
        self._background: deque[Ticket] = deque()
        self._people_served = 0  # slots handed to people since the last tournament turn

    @property
    def busy(self) -> int:
        return self.slots - len(self._free)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def state(self) -> QueueState:
        return QueueState(self.model, self.slots, self.busy, self.waiting, self.capacity,
                          len(self._background))

    def enter(self, *, background: bool = False) -> Ticket:
        """A ticket: holding a slot already when one is free and nobody waits, else in line.
        Raises QueueFull when the line holds ``capacity`` games already. A ``background``
        ticket (a tournament's turn) waits in a line of its own, never full, served only when
        no person waits."""
        if self._free and not self._waiting and not self._background:
            ticket = Ticket(self, background=background)
            ticket.slot = self._free.pop(0)
            ticket._granted.set_result(ticket.slot)
            return ticket
        if background:
            ticket = Ticket(self, background=True)
            self._background.append(ticket)
            return ticket
        if len(self._waiting) >= self.capacity:
            raise QueueFull(self.model, len(self._waiting))
        ticket = Ticket(self)
        self._waiting.append(ticket)
        return ticket

    def _position(self, ticket: Ticket) -> int:
        if ticket.slot is not None:
            return 0
        line = self._background if ticket.background else self._waiting
        try:
            return line.index(ticket) + 1 + (len(self._waiting) if ticket.background else 0)
        except ValueError:
            return 0

    def _release(self, ticket: Ticket) -> None:
        if ticket.slot is None:  # never got a slot: just leave the line
            line = self._background if ticket.background else self._waiting
            try:
                line.remove(ticket)
            except ValueError:
                pass
            ticket._granted.cancel()
            return
        slot, ticket.slot = ticket.slot, None
        # people first, then tournaments; but while people keep waiting, one tournament turn
        # after every BACKGROUND_EVERY people's turns, so tournaments still move
        lines = (self._waiting, self._background)
        if self._background and self._people_served >= BACKGROUND_EVERY:
            lines = (self._background, self._waiting)
        for line in lines:
            while line:
                nxt = line.popleft()
                if not nxt._granted.done():
                    nxt.slot = slot
                    nxt._granted.set_result(slot)
                    self._people_served = 0 if nxt.background else self._people_served + 1
                    return
        self._free.append(slot)
        self._free.sort()


class ModelQueues:
    """One ModelQueue per model name, made on first use with the same slots and capacity,
    except the models ``per_model`` names: a batched model answers its ``n_slots``
    conversations together, so its queue has that many slots."""

    def __init__(self, *, slots: int = 1, capacity: int = 10,
                 per_model: Mapping[str, int] | None = None) -> None:
        self.slots = slots
        self.capacity = capacity
        self.per_model = dict(per_model or {})
        self._queues: dict[str, ModelQueue] = {}

    def get(self, model: str) -> ModelQueue:
        queue = self._queues.get(model)
        if queue is None:
            queue = self._queues[model] = ModelQueue(
                model, slots=self.per_model.get(model, self.slots), capacity=self.capacity)
        return queue

    def states(self) -> list[QueueState]:
        return [q.state() for q in self._queues.values()]
