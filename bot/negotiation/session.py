"""A person haggling with an agent: the game behind `haggle play` and the Discord bot.

The person's free text goes through the rule-based parser; the agent answers through the
same Negotiation rules as bot-vs-bot runs. Nothing a person types can move the agent past its
reservation: the agent's own turns are guarded, and a person's accept only ever closes at the
agent's own standing offer. A price below 1% or above 10x the listing price is refused as a
typo (``$50,000`` for a $200 item), in every front end alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.errors import TurnError
from bot.negotiation.agents import Agent
from bot.negotiation.parser import parse_utterance
from bot.negotiation.prompts import money
from bot.negotiation.runner import DEFAULT_MAX_TURNS, Negotiation, NegotiationRecord, play_turn
from bot.negotiation.scenario import Scenario
from bot.negotiation.turns import TERMINAL_ACTS, Act, Outcome, Role, Turn, standing_price

MAX_STORED_CHARS = 1000  # what is kept of a person's message (Discord allows 4,000)
# A price below 1% or above 10x the listing price is a typo, not an offer.
ABSURD_LOW, ABSURD_HIGH = 0.01, 10.0


def absurd_price(price: float | None, listing_price: float) -> bool:
    """Whether a person's price is too far from the listing to be meant (a typo)."""
    return price is not None and not (ABSURD_LOW * listing_price <= price
                                      <= ABSURD_HIGH * listing_price)


@dataclass
class Exchange:
    """What one message of the person produced."""

    turns: list[Turn] = field(default_factory=list)  # the person's turn, then the agent's
    notice: str | None = None  # a short explanation when the message made no move


class HumanGame:
    def __init__(self, scenario: Scenario, agent: Agent, *, human_role: Role | str,
                 human_name: str = "you", max_turns: int = DEFAULT_MAX_TURNS,
                 first_mover: Role | str = Role.BUYER, turn_timeout: float | None = None) -> None:
        self.human_role = Role.parse(human_role)
        self.agent = agent
        self.turn_timeout = turn_timeout
        names = {self.human_role: human_name, self.human_role.other: agent.name}
        self.negotiation = Negotiation(scenario, buyer=names[Role.BUYER], seller=names[Role.SELLER],
                                       max_turns=max_turns, first_mover=first_mover)

    @property
    def scenario(self) -> Scenario:
        return self.negotiation.scenario

    @property
    def done(self) -> bool:
        return self.negotiation.done

    @property
    def agent_offer(self) -> float | None:
        return standing_price(self.negotiation.turns, self.human_role.other)

    @property
    def human_offer(self) -> float | None:
        return standing_price(self.negotiation.turns, self.human_role)

    @property
    def turns_left(self) -> int:
        return self.negotiation.max_turns - len(self.negotiation.turns)

    async def start(self) -> list[Turn]:
        """Let the agent open when it moves first; returns its turn (if any)."""
        if not self.done and self.negotiation.next_role is not self.human_role:
            turn = await play_turn(self.negotiation, self.agent, timeout=self.turn_timeout)
            return [turn] if turn else []
        return []

    def interpret(self, text: str) -> Turn:
        """The person's message as a turn (raises TurnError with a reply-worthy message: no
        move found, nothing to accept, an absurd price)."""
        text = (text or "").strip()
        if not text:
            raise TurnError("Say something, or name a price.")
        turns = self.negotiation.turns
        parsed = parse_utterance(text, role=self.human_role, listing_price=self.scenario.listing_price,
                                 has_prices=any(t.price is not None for t in turns), history=turns)
        stored = text if len(text) <= MAX_STORED_CHARS else text[: MAX_STORED_CHARS - 1] + "…"
        act, price = parsed.act, parsed.price
        if act is Act.ACCEPT:
            offer = self.agent_offer
            if price is not None and (offer is None or abs(price - offer) > 0.005 * offer):
                act = Act.COUNTER_PRICE  # "ok, deal at 60" against an offer of 70 is a counter
            elif offer is None:
                raise TurnError("There's no offer on the table to accept yet. Name a price!")
            else:
                price = offer
        listing = self.scenario.listing_price
        if absurd_price(price, listing):
            raise TurnError(f"{money(price)} for something listed at {money(listing)}? That "
                            f"looks like a typo; try again with a real offer.")
        return Turn(self.human_role, act, price, stored)

    def ending_move(self, text: str) -> Turn | None:
        """The person's message when it ends the game by itself (a deal at the agent's standing
        offer, a walk-away, a refusal): such a move needs no answer from the agent, so no model
        call. None for anything else (including a message that makes no valid move)."""
        if self.done:
            return None
        try:
            turn = self.interpret(text)
        except TurnError:
            return None
        return turn if turn.act in TERMINAL_ACTS else None

    async def say(self, text: str) -> Exchange:
        """Play the person's message, then the agent's answer if the game goes on."""
        if self.done:
            return Exchange(notice=f"This negotiation is over ({self.negotiation.outcome.value}).")
        if self.negotiation.next_role is not self.human_role:
            return Exchange(notice="Hold on, it's not your turn yet.")
        try:
            turn = self.negotiation.apply(self.interpret(text))
        except TurnError as exc:
            return Exchange(notice=str(exc))
        exchange = Exchange(turns=[turn])
        if not self.done:
            reply = await play_turn(self.negotiation, self.agent, timeout=self.turn_timeout)
            if reply is not None:
                exchange.turns.append(reply)
        return exchange

    async def accept(self) -> Exchange:
        """The Accept button: take the agent's standing offer."""
        offer = self.agent_offer
        if offer is None:
            return Exchange(notice="There's no offer on the table to accept yet.")
        return await self._button(Turn(self.human_role, Act.ACCEPT, offer, f"Deal at {money(offer)}."))

    async def walk_away(self) -> Exchange:
        """The Walk away button (or a typed "bye"): a person may leave at any moment, even while
        the agent still owes its move (its opening, or a retry after a failure); no agent is
        asked anything."""
        if not self.done and self.negotiation.next_role is not self.human_role:
            self.negotiation.end(Outcome.QUIT, "the person walked away before the agent moved")
            return Exchange()
        return await self._button(Turn(self.human_role, Act.QUIT, None, "I'll pass, thanks."))

    async def _button(self, turn: Turn) -> Exchange:
        if self.done:
            return Exchange(notice=f"This negotiation is over ({self.negotiation.outcome.value}).")
        if self.negotiation.next_role is not self.human_role:
            return Exchange(notice="Hold on, it's not your turn yet.")
        return Exchange(turns=[self.negotiation.apply(turn)])

    def abandon(self, outcome: Outcome = Outcome.ABANDONED, reason: str | None = None) -> None:
        self.negotiation.end(outcome, reason)

    def record(self) -> NegotiationRecord:
        return self.negotiation.record()

    def to_state(self) -> dict[str, Any]:
        """A JSON-ready snapshot, enough to resume the game after a restart."""
        n = self.negotiation
        return {
            "scenario": n.scenario.to_dict(), "human_role": self.human_role.value,
            "names": {"buyer": n.names[Role.BUYER], "seller": n.names[Role.SELLER]},
            "max_turns": n.max_turns, "first_mover": n.first_mover.value,
            "started_at": n.started_at, "turns": [t.to_dict() for t in n.turns],
            "outcome": n.outcome.value if n.outcome else None, "error": n.error,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], agent: Agent, *,
                   turn_timeout: float | None = None) -> HumanGame:
        """Rebuild a game from ``to_state()``, replaying its turns through the same rules."""
        human_role = Role.parse(state["human_role"])
        game = cls(Scenario.from_dict(state["scenario"]), agent, human_role=human_role,
                   human_name=state["names"][human_role.value], max_turns=state["max_turns"],
                   first_mover=state["first_mover"], turn_timeout=turn_timeout)
        game.negotiation.started_at = state.get("started_at", game.negotiation.started_at)
        for turn in state["turns"]:
            game.negotiation.apply(Turn.from_dict(turn))
        if state.get("outcome") and not game.done:
            game.negotiation.end(Outcome(state["outcome"]), state.get("error"))
        return game
