"""Agents: the Agent protocol and the rule-based CoCoA-style baseline.

An agent sees a DialogueState (the scenario, its seat, the turns so far with the
counterpart's hidden thoughts removed, the turn cap) and returns its next Turn. The LLM agent
lives in bot/negotiation/llm_agent.py and speaks to a backend through the ChatBackend protocol.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

from bot.negotiation.guard import guard_turn
from bot.negotiation.prompts import money
from bot.negotiation.scenario import Scenario, round_price, rounding_step  # noqa: F401 (re-exported)
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


# Template utterances: several phrasings per move so transcripts read naturally. Keys are
# (act, role); role None serves both seats.
_TEMPLATES: dict[tuple[Act, Role | None], list[str]] = {
    (Act.INIT_PRICE, Role.SELLER): ["It's listed at {p}, and it's in great shape.", "I'm asking {p} for it.",
                                    "{p} and it's yours. It works perfectly."],
    (Act.INIT_PRICE, Role.BUYER): ["Hi! I'm interested. Would you take {p}?", "Hello, could you do {p} for it?",
                                   "Hey, I can offer {p}."],
    (Act.COUNTER_PRICE, Role.SELLER): ["I can come down to {p}.", "How about {p}? That's a fair price.",
                                       "The best I can do right now is {p}.", "Meet me at {p}?",
                                       "I could let it go for {p}.", "I can do {p} for you.",
                                       "Let's make it {p}.", "I can meet you partway at {p}."],
    (Act.COUNTER_PRICE, Role.BUYER): ["I could go up to {p}.", "How about {p}?", "Would you do {p}?",
                                      "{p} is what I can offer.", "Let's say {p}, cash today.",
                                      "I can stretch to {p}.", "Could we settle on {p}?",
                                      "Would {p} work for you?"],
    (Act.ACCEPT, None): ["Deal, {p} it is.", "Okay, {p} works for me.", "Sounds good, {p}.",
                         "Alright, you've got a deal at {p}."],
    (Act.INSIST, Role.SELLER): ["{p} is really my lowest.", "Sorry, I can't go below {p}.",
                                "I have to stay at {p}.", "{p} is firm, I'm afraid.",
                                "I'm holding at {p}.", "Still {p}, that's already a good price.",
                                "I really can't do better than {p}.", "It has to be {p}, sorry."],
    (Act.INSIST, Role.BUYER): ["{p} is the most I can pay.", "I really can't go above {p}.",
                               "My budget stops at {p}.", "{p} is as high as I can go.",
                               "I'm staying at {p}.", "Still {p} from me, that's my limit.",
                               "I can't stretch past {p}, sorry.", "{p} is all I have for this."],
    (Act.INQUIRE, None): ["Does it have any scratches or damage?", "How long have you had it?",
                          "Is anything missing or broken?", "Why are you selling it?"],
    (Act.INFORM, None): ["It's been well looked after.", "Everything works as it should.",
                         "It comes with everything shown in the listing."],
    (Act.INTRO, None): ["Hi there!", "Hello! Is this still available?", "Hey, how are you?"],
    (Act.QUIT, None): ["I think we're too far apart. Good luck with the sale.",
                       "That won't work for me, sorry. Take care."],
    (Act.REJECT, None): ["No, I can't do that. Thanks anyway.", "Sorry, that doesn't work for me."],
}


def words_only(text: str) -> str:
    """``text`` without prices or numbers, lower case: two sentences that differ only in the
    price are the same words (a person hears them as a repeat)."""
    text = re.sub(r"\$?\d[\d,.]*k?", " ", text.lower())
    return " ".join(re.findall(r"[a-z']+", text))


def template_utterance(act: Act, role: Role, price: float | None, rng: random.Random,
                       avoid: Sequence[str] = ()) -> str:
    """A natural phrasing of (act, price) for ``role``, preferring wording not used in ``avoid``."""
    options = _TEMPLATES.get((act, role)) or _TEMPLATES.get((act, None)) or ["Let me think about it."]
    texts = [o.format(p=money(price) if price is not None else "") for o in options]
    used = {words_only(a) for a in avoid}
    fresh = [t for t in texts if words_only(t) not in used]
    return rng.choice(fresh or texts)


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
        step = rounding_step(listing)
        if price == mine and abs(goal - mine) >= step:  # a rounded-away concession: move one step
            price = mine + (step if goal > mine else -step)
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
        said = [t.utterance for t in state.turns if t.role is role]
        price = self.next_price(state)
        if self.wants_to_accept(state, price):
            p = state.their_offer
            return Turn(role, Act.ACCEPT, p, template_utterance(Act.ACCEPT, role, p, rng, said))
        mine = state.my_offer
        # Small talk early on, before prices dominate (CoCoA's bots inquired and informed too).
        if state.turn_index < 4 and mine is None and state.their_offer is None and rng.random() < self.chatter:
            act = Act.INQUIRE if role is Role.BUYER else Act.INFORM
            return Turn(role, act, None, template_utterance(act, role, None, rng, said))
        if mine is None:
            act = Act.INIT_PRICE
        elif math.isclose(price, mine):
            act = Act.INSIST
        else:
            act = Act.COUNTER_PRICE
        turn = Turn(role, act, price, template_utterance(act, role, price, rng, said))
        return guard_turn(turn, state.scenario, state.turns)


def visible_history(turns: Sequence[Turn], role: Role) -> tuple[Turn, ...]:
    """What ``role`` may see: the counterpart's hidden thoughts removed."""
    return tuple(t if t.role is role or t.thought is None else replace(t, thought=None) for t in turns)
