"""The negotiation runner: alternating turns, the turn cap, terminal states, the record.

``Negotiation`` holds the rules (who speaks, what a valid turn is, when it ends); both the
bot-vs-bot loop ``run_negotiation`` and the human games (terminal and Discord) drive it, so
the rules live in one place.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from bot.errors import TurnError
from bot.negotiation.agents import Agent, DialogueState, visible_history
from bot.negotiation.metrics import compute_metrics
from bot.negotiation.scenario import Scenario
from bot.negotiation.turns import Act, Outcome, Role, Turn, standing_price

DEFAULT_MAX_TURNS = 15  # the paper's cap


@dataclass
class NegotiationRecord:
    """Everything about one finished negotiation (JSON-ready through ``to_dict``)."""

    scenario: Scenario
    buyer: str
    seller: str
    turns: list[Turn]
    outcome: Outcome
    deal_price: float | None
    max_turns: int
    first_mover: Role
    error: str | None = None
    started_at: str = ""
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.to_dict(),
            "agents": {"buyer": self.buyer, "seller": self.seller},
            "first_mover": self.first_mover.value,
            "max_turns": self.max_turns,
            "turns": [t.to_dict() for t in self.turns],
            "outcome": self.outcome.value,
            "deal_price": self.deal_price,
            "error": self.error,
            "started_at": self.started_at,
            "seconds": self.seconds,
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NegotiationRecord:
        return cls(
            scenario=Scenario.from_dict(data["scenario"]),
            buyer=data["agents"]["buyer"], seller=data["agents"]["seller"],
            turns=[Turn.from_dict(t) for t in data["turns"]],
            outcome=Outcome(data["outcome"]), deal_price=data["deal_price"],
            max_turns=data["max_turns"], first_mover=Role(data["first_mover"]),
            error=data.get("error"), started_at=data.get("started_at", ""),
            seconds=data.get("seconds", 0.0), metrics=dict(data.get("metrics", {})),
        )


class Negotiation:
    """The state of one negotiation and its rules.

    Turns alternate starting with ``first_mover``. ``accept`` closes a deal at the
    counterpart's standing (last proposed) price; ``reject``/``quit`` end with no deal; after
    ``max_turns`` turns without either, it ends at the turn limit.

    A dead model is an error, not a result: with ``max_model_failures`` = k, a side whose
    model failed (``Turn.model_failed``: unreachable, failed to load, HTTP error, timeout) on k
    consecutive turns, or on every turn it played by the time the negotiation ends, ends it as
    ERROR with the reason, whatever its fallback turns had reached. None (the human games)
    keeps the fallback play.
    """

    def __init__(self, scenario: Scenario, *, buyer: str, seller: str,
                 max_turns: int = DEFAULT_MAX_TURNS, first_mover: Role | str = Role.BUYER,
                 max_model_failures: int | None = None) -> None:
        if max_turns < 2:
            raise ValueError(f"max_turns must be >= 2, got {max_turns}")
        if max_model_failures is not None and max_model_failures < 1:
            raise ValueError(f"max_model_failures must be >= 1, got {max_model_failures}")
        self.max_model_failures = max_model_failures
        self.scenario = scenario
        self.names = {Role.BUYER: buyer, Role.SELLER: seller}
        self.max_turns = max_turns
        self.first_mover = Role.parse(first_mover)
        self.turns: list[Turn] = []
        self.outcome: Outcome | None = None
        self.deal_price: float | None = None
        self.error: str | None = None
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._t0 = time.perf_counter()
        self._seconds: float | None = None

    @property
    def done(self) -> bool:
        return self.outcome is not None

    @property
    def next_role(self) -> Role:
        return self.first_mover if len(self.turns) % 2 == 0 else self.first_mover.other

    def state_for(self, role: Role) -> DialogueState:
        return DialogueState(self.scenario, role, visible_history(self.turns, role), self.max_turns)

    def check(self, turn: Turn) -> Turn:
        """Validate ``turn`` as the next move; return it normalised (an accept carries the
        price it accepts). Raises TurnError saying what is wrong."""
        if self.done:
            raise TurnError(f"the negotiation is over ({self.outcome.value})")
        if not isinstance(turn, Turn):
            raise TurnError(f"expected a Turn, got {type(turn).__name__}")
        if turn.role is not self.next_role:
            raise TurnError(f"it is the {self.next_role.value}'s turn, not the {turn.role.value}'s")
        if turn.act is Act.ACCEPT:
            theirs = standing_price(self.turns, turn.role.other)
            if theirs is None:
                raise TurnError("there is no offer on the table to accept")
            if turn.price != theirs:
                turn = replace(turn, price=theirs)
        return turn

    def apply(self, turn: Turn) -> Turn:
        """Record a valid turn and settle the outcome if it ends the negotiation."""
        turn = self.check(turn)
        self.turns.append(turn)
        if turn.act is Act.ACCEPT:
            self._finish(Outcome.DEAL, deal_price=turn.price)
        elif turn.act is Act.REJECT:
            self._finish(Outcome.REJECT)
        elif turn.act is Act.QUIT:
            self._finish(Outcome.QUIT)
        elif len(self.turns) >= self.max_turns:
            self._finish(Outcome.TURN_LIMIT)
        dead = self.dead_model()
        if dead is not None:
            self._finish(Outcome.ERROR, error=dead)
        return turn

    def dead_model(self) -> str | None:
        """Why this negotiation is void because a side's model kept failing, or None."""
        if self.max_model_failures is None:
            return None
        for role in (self.first_mover, self.first_mover.other):
            mine = [t for t in self.turns if t.role is role]
            streak = 0
            for t in reversed(mine):
                if not t.model_failed:
                    break
                streak += 1
            if not streak:
                continue
            last = (mine[-1].guard or "").removeprefix("fallback: ").removeprefix("model error: ")
            who = f"{role.value} agent {self.names[role]!r}"
            if streak >= self.max_model_failures:
                return (f"{who}: its model failed on {streak} turns in a row, the limit "
                        f"(max_model_failures); last failure: {last}")[:500]
            if self.done and streak == len(mine):
                return (f"{who}: its model failed on every turn it played ({streak}); last "
                        f"failure: {last}")[:500]
        return None

    def end(self, outcome: Outcome, error: str | None = None) -> None:
        """End early: an agent failed (ERROR), a person left (ABANDONED) or went quiet (TIMEOUT)."""
        if not self.done:
            self._finish(outcome, error=error)

    def _finish(self, outcome: Outcome, *, deal_price: float | None = None, error: str | None = None) -> None:
        self.outcome, self.deal_price, self.error = outcome, deal_price, error
        self._seconds = time.perf_counter() - self._t0

    def record(self) -> NegotiationRecord:
        if not self.done:
            raise RuntimeError("the negotiation is not over yet")
        sc = self.scenario
        metrics = compute_metrics(
            sc.listing_price, sc.buyer_target, sc.seller_target, self.turns, self.deal_price,
            seller_reservation=sc.seller_reservation, buyer_reservation=sc.buyer_reservation,
        )
        return NegotiationRecord(
            scenario=sc, buyer=self.names[Role.BUYER], seller=self.names[Role.SELLER],
            turns=list(self.turns), outcome=self.outcome, deal_price=self.deal_price,
            max_turns=self.max_turns, first_mover=self.first_mover, error=self.error,
            started_at=self.started_at, seconds=self._seconds or 0.0, metrics=metrics,
        )


TurnCallback = Callable[[Turn, "Negotiation"], Awaitable[None] | None]


async def play_turn(negotiation: Negotiation, agent: Agent, *, timeout: float | None = None) -> Turn | None:
    """Ask ``agent`` for the next turn and apply it. An agent that raises, times out or returns
    an invalid turn ends the negotiation as ERROR with the reason; returns None then."""
    role = negotiation.next_role
    t0 = time.perf_counter()
    try:
        # asyncio.timeout, not wait_for: wait_for (3.11) can swallow a cancellation that arrives
        # just as the turn completes, and a cancelled tournament must stop
        async with asyncio.timeout(timeout):
            turn = await agent.respond(negotiation.state_for(role))
        if isinstance(turn, Turn) and turn.seconds == 0.0:
            turn = replace(turn, seconds=time.perf_counter() - t0)
        return negotiation.apply(turn)
    except TimeoutError:
        negotiation.end(Outcome.ERROR, f"{role.value} agent {agent.name!r} took longer than {timeout:g}s")
    except TurnError as exc:
        negotiation.end(Outcome.ERROR, f"{role.value} agent {agent.name!r} made an invalid turn: {exc}")
    except Exception as exc:  # an agent's bug must not take the runner down
        negotiation.end(Outcome.ERROR, f"{role.value} agent {agent.name!r} failed: "
                                       f"{type(exc).__name__}: {exc}")
    return None


async def run_negotiation(
    scenario: Scenario,
    buyer: Agent,
    seller: Agent,
    *,
    max_turns: int = DEFAULT_MAX_TURNS,
    first_mover: Role | str = Role.BUYER,
    turn_timeout: float | None = None,
    on_turn: TurnCallback | None = None,
    max_model_failures: int | None = None,
) -> NegotiationRecord:
    """Play a bot-vs-bot negotiation to its end and return the record (``max_model_failures``:
    see Negotiation)."""
    negotiation = Negotiation(scenario, buyer=buyer.name, seller=seller.name,
                              max_turns=max_turns, first_mover=first_mover,
                              max_model_failures=max_model_failures)
    agents = {Role.BUYER: buyer, Role.SELLER: seller}
    while not negotiation.done:
        turn = await play_turn(negotiation, agents[negotiation.next_role], timeout=turn_timeout)
        if turn is not None and on_turn is not None:
            result = on_turn(turn, negotiation)
            if asyncio.iscoroutine(result):
                await result
        # agents that never suspend (rule agents) would otherwise play a whole negotiation in
        # one step of the event loop: yield between turns so live streams and bots stay responsive
        await asyncio.sleep(0)
    return negotiation.record()
