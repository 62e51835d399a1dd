"""Agents: the Agent protocol and the rule-based CoCoA-style baseline.

An agent sees a DialogueState (the scenario, its seat, the turns so far with the
counterpart's hidden thoughts removed, the turn cap) and returns its next Turn. The LLM agent
lives in bot/negotiation/llm_agent.py and speaks to a backend through the ChatBackend protocol.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Protocol, Sequence, runtime_checkable

from bot.negotiation.guard import guard_turn
from bot.negotiation.prompts import money
from bot.negotiation.scenario import Scenario
from bot.negotiation.turns import Act, Role, Turn, standing_price


@dataclass(frozen=True)
class DialogueState:
    scenario: Scenario
    role: Role                 # the seat of the agent asked to move
    turns: tuple[Turn, ...]    # counterpart thoughts already removed
    max_turns: int = 15

    @property
    def turn_index(self) -> int:
        return len(self.turns)

    @property
    def turns_left(self) -> int:
        """Turns left including the one about to be played."""
        return self.max_turns - len(self.turns)

    @property
    def their_offer(self) -> float | None:
        return standing_price(self.turns, self.role.other)

    @property
    def my_offer(self) -> float | None:
        return standing_price(self.turns, self.role)


@runtime_checkable
class Agent(Protocol):
    name: str

    async def respond(self, state: DialogueState) -> Turn: ...


def round_price(price: float, listing: float) -> float:
    """Round like people do for the item's price range: $7.50, $45, $120, $1,250."""
    if listing < 20:
        step = 0.5
    elif listing < 100:
        step = 1.0
    elif listing < 1000:
        step = 5.0
    elif listing < 10000:
        step = 25.0
    else:
        step = 100.0
    return round(price / step) * step or step


# Template utterances: several phrasings per move so transcripts read naturally.
_OPEN = {
    Role.SELLER: ["It's listed at {p}, and it's in great shape.", "I'm asking {p} for it.",
                  "{p} and it's yours. It works perfectly."],
    Role.BUYER: ["Hi! I'm interested. Would you take {p}?", "Hello, could you do {p} for it?",
                 "Hey, I can offer {p}."],
}
_COUNTER = {
    Role.SELLER: ["I can come down to {p}.", "How about {p}? That's a fair price.",
                  "The best I can do right now is {p}.", "Meet me at {p}?",
                  "I could let it go for {p}."],
    Role.BUYER: ["I could go up to {p}.", "How about {p}?", "Would you do {p}?",
                 "{p} is what I can offer.", "Let's say {p}, cash today."],
}
_ACCEPT = ["Deal, {p} it is.", "Okay, {p} works for me.", "Sounds good, {p}.",
           "Alright, you've got a deal at {p}."]
_INSIST = {
    Role.SELLER: ["{p} is really my lowest.", "Sorry, I can't go below {p}."],
    Role.BUYER: ["{p} is the most I can pay.", "I really can't go above {p}."],
}
_INQUIRE = ["Does it have any scratches or damage?", "How long have you had it?",
            "Is anything missing or broken?", "Why are you selling it?"]
_INFORM = ["It's been well looked after.", "Everything works as it should.",
           "It comes with everything shown in the listing."]


class RuleAgent:
    """A CoCoA-style hybrid baseline for either seat.

    Opens near its target, concedes a fraction of the remaining gap toward the counterpart's
    offer each turn, never crosses its reservation, accepts an offer within ``accept_gap`` x
    listing of its own next offer (or any acceptable offer on the last turns), sometimes asks
    or tells something about the item, and varies its wording. Deterministic under a seed.
    """

    def __init__(self, name: str = "rule", *, concession: float = 0.25, accept_gap: float = 0.03,
                 chatter: float = 0.2, seed: int | None = 0) -> None:
        if not 0 < concession <= 1:
            raise ValueError("concession must be in (0, 1]")
        self.name = name
        self.concession = concession
        self.accept_gap = accept_gap
        self.chatter = chatter
        self.seed = seed

    def _rng(self, state: DialogueState) -> random.Random:
        # A fresh generator per (seed, scenario, seat, turn): the same dialogue always gets the
        # same move, however many negotiations this agent plays or in what order.
        return random.Random(f"{self.seed}|{state.scenario.id}|{state.role.value}|{state.turn_index}")

    def next_price(self, state: DialogueState) -> float:
        """The price this agent would propose now."""
        sc, role = state.scenario, state.role
        listing = sc.listing_price
        reservation = sc.reservation(role)
        mine = state.my_offer
        if mine is None:
            if role is Role.SELLER:
                opening = max(sc.seller_target, listing)
            else:
                opening = sc.buyer_target * 0.95  # anchor a little below the target
            return round_price(opening, listing)
        theirs = state.their_offer
        goal = theirs if theirs is not None else reservation
        # Concede toward the counterpart, but never past the reservation.
        goal = max(goal, reservation) if role is Role.SELLER else min(goal, reservation)
        price = mine + self.concession * (goal - mine)
        price = round_price(price, listing)
        if role is Role.SELLER:
            price = max(price, sc.seller_reservation)
            price = min(price, mine)  # never go back up
        else:
            price = min(price, sc.buyer_reservation)
            price = max(price, mine)
        return price

    def wants_to_accept(self, state: DialogueState, my_next: float) -> bool:
        theirs = state.their_offer
        sc, role = state.scenario, state.role
        if theirs is None or not sc.within_reservation(role, theirs):
            return False
        as_good = theirs >= my_next if role is Role.SELLER else theirs <= my_next
        close = abs(theirs - my_next) <= self.accept_gap * sc.listing_price
        last_chance = state.turns_left <= 2
        return as_good or close or last_chance

    async def respond(self, state: DialogueState) -> Turn:
        rng = self._rng(state)
        role = state.role
        price = self.next_price(state)
        if self.wants_to_accept(state, price):
            p = state.their_offer
            return Turn(role, Act.ACCEPT, p, rng.choice(_ACCEPT).format(p=money(p)))
        mine = state.my_offer
        # Small talk early on, before prices dominate (CoCoA's bots inquired and informed too).
        if state.turn_index < 4 and mine is None and state.their_offer is None and rng.random() < self.chatter:
            if role is Role.BUYER:
                return Turn(role, Act.INQUIRE, None, rng.choice(_INQUIRE))
            return Turn(role, Act.INFORM, None, rng.choice(_INFORM))
        if mine is None:
            turn = Turn(role, Act.INIT_PRICE, price, rng.choice(_OPEN[role]).format(p=money(price)))
        elif math.isclose(price, mine):
            turn = Turn(role, Act.INSIST, price, rng.choice(_INSIST[role]).format(p=money(price)))
        else:
            turn = Turn(role, Act.COUNTER_PRICE, price, rng.choice(_COUNTER[role]).format(p=money(price)))
        return guard_turn(turn, state.scenario, state.turns)


def visible_history(turns: Sequence[Turn], role: Role) -> tuple[Turn, ...]:
    """What ``role`` may see: the counterpart's hidden thoughts removed."""
    return tuple(t if t.role is role or t.thought is None else replace(t, thought=None) for t in turns)
