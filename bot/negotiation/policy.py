"""The concession policy of hybrid agents: the policy chooses the act and the price, the LLM
writes the words (Xia et al. 2024 raised a buyer's deal rate from 27% to 89% this way).

Each turn the agent concedes a fraction of the gap between its own standing offer and the
counterpart's (both sides splitting the gap alike meet in the middle, which is what the
paper's fairness rewards), and that fraction grows with time (Faratin, Sierra & Jennings 1998):
``c = start + (end - start) * t ** (1 / beta)`` with t the share of its turns used, so beta < 1
holds back until late (Boulware: aggressive), beta = 1 concedes steadily (fair), beta > 1
early (conceder: passive). ``limit`` lies between the agent's target (0) and its reservation
price (1), so no personality ever crosses its reservation. Prices are rounded the way people
round them for the item's price range, never move backwards, and an offer within a step of
the agent's own next price is accepted instead of haggled over in cents.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from bot.negotiation.agents import DialogueState, round_price, rounding_step
from bot.negotiation.personality import DEFAULT_PERSONALITY, Personality
from bot.negotiation.turns import Act, Role


@dataclass(frozen=True)
class PolicyParams:
    opening: float      # the buyer opens this fraction below its target; the seller at the listing
    start: float        # share of the gap conceded on its first counter-offer
    end: float          # ... and on its last
    beta: float         # shape of the concession curve between them (see module docstring)
    limit: float        # how far toward its reservation it may go: 0 = its target, 1 = reservation
    accept_gap: float   # accept an offer within this fraction of the listing of its next price
    walk_away: bool     # on its last turn, quit rather than accept an offer beyond its limit
    chatter: float      # chance of an opening small-talk turn (a question about the item)


PERSONALITY_PARAMS: dict[Personality, PolicyParams] = {
    "aggressive": PolicyParams(opening=0.15, start=0.1, end=0.4, beta=0.5, limit=0.7,
                               accept_gap=0.01, walk_away=True, chatter=0.3),
    "fair": PolicyParams(opening=0.0, start=0.25, end=0.5, beta=1.0, limit=1.0,
                         accept_gap=0.03, walk_away=False, chatter=0.5),
    "passive": PolicyParams(opening=0.0, start=0.4, end=0.7, beta=2.0, limit=1.0,
                            accept_gap=0.06, walk_away=False, chatter=0.5),
}


@dataclass(frozen=True)
class Plan:
    act: Act
    price: float | None


class ConcessionPolicy:
    def __init__(self, params: PolicyParams | Personality = DEFAULT_PERSONALITY, *,
                 seed: int | None = 0) -> None:
        self.params = PERSONALITY_PARAMS[params] if isinstance(params, str) else params
        self.seed = seed

    def _rng(self, state: DialogueState) -> random.Random:
        return random.Random(f"{self.seed}|{state.scenario.id}|{state.role.value}|{state.turn_index}")

    def _turns_for(self, state: DialogueState) -> tuple[int, int]:
        """(index of this turn among the agent's own, how many the agent gets in all)."""
        mine = sum(1 for t in state.turns if t.role is state.role)
        # turns alternate, so the agent gets every other one of those left, this one included
        total = mine + math.ceil(state.turns_left / 2)
        return mine, max(total, 1)

    def opening(self, state: DialogueState) -> float:
        sc = state.scenario
        if state.role is Role.SELLER:
            return max(sc.seller_target, sc.listing_price)
        return sc.buyer_target * (1 - self.params.opening)

    def limit(self, state: DialogueState) -> float:
        sc, role = state.scenario, state.role
        target, reservation = sc.target(role), sc.reservation(role)
        return target + self.params.limit * (reservation - target)

    def concession(self, state: DialogueState) -> float:
        """The share of the gap to concede at this turn."""
        k, total = self._turns_for(state)
        t = k / max(total - 1, 1)
        p = self.params
        return p.start + (p.end - p.start) * min(1.0, t ** (1 / p.beta))

    def next_price(self, state: DialogueState) -> float:
        sc, role = state.scenario, state.role
        mine, theirs = state.my_offer, state.their_offer
        limit = self.limit(state)
        if mine is None:
            price = self.opening(state)
        else:
            goal = limit if theirs is None else theirs
            # never aim past the own limit
            goal = max(goal, limit) if role is Role.SELLER else min(goal, limit)
            price = mine + self.concession(state) * (goal - mine)
        price = round_price(price, sc.listing_price)
        if role is Role.SELLER:
            price = max(price, round_price(limit, sc.listing_price), sc.seller_reservation)
            if mine is not None:
                price = min(price, mine)  # never ask more than before
        else:
            price = min(price, round_price(limit, sc.listing_price), sc.buyer_reservation)
            if mine is not None:
                price = max(price, mine)  # never offer less than before
        return price

    def _good_for_me(self, state: DialogueState, offer: float, than: float) -> bool:
        return offer >= than if state.role is Role.SELLER else offer <= than

    def plan(self, state: DialogueState) -> Plan:
        sc, role, params = state.scenario, state.role, self.params
        theirs, mine = state.their_offer, state.my_offer
        rng = self._rng(state)
        if theirs is None and mine is None and state.turn_index < 2 and rng.random() < params.chatter:
            # open with a question about the item (buyer) or a word about it (seller)
            return Plan(Act.INQUIRE if role is Role.BUYER else Act.INFORM, None)
        price = self.next_price(state)
        if theirs is not None and sc.within_reservation(role, theirs):
            step = max(rounding_step(sc.listing_price), params.accept_gap * sc.listing_price)
            if self._good_for_me(state, theirs, price) or abs(theirs - price) <= step:
                return Plan(Act.ACCEPT, theirs)
            last_turn = state.turns_left <= 2  # the counterpart would have at most one more turn
            if last_turn:
                beyond_limit = not self._good_for_me(state, theirs, self.limit(state))
                if not (params.walk_away and beyond_limit):
                    return Plan(Act.ACCEPT, theirs)
                return Plan(Act.QUIT, None)
        if mine is None:
            return Plan(Act.INIT_PRICE, price)
        if math.isclose(price, mine):
            return Plan(Act.INSIST, price)
        return Plan(Act.COUNTER_PRICE, price)
