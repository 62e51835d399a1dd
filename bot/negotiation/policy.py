"""The concession policy of hybrid agents: the policy chooses the act and the price, the LLM
writes the words (Xia et al. 2024 raised a buyer's deal rate from 27% to 89% this way).

The policy answers the other side instead of running a clock (the exploit it closes: a buyer
who repeated "I can pay 0.7 x listing, final offer" used to get exactly the bottom line):

- Reciprocity (tit-for-tat on concessions, as in ANAC's hardheads and Faratin et al. 1998's
  behaviour-dependent tactics): each counter-offer gives back ``reciprocity`` x the other
  side's last concession, never more than half the gap between the two offers.
- A small time-dependent drift on top, Boulware-shaped (``drift_start`` early, growing to
  ``drift_end`` with ``t ** (1 / beta)``), so two reciprocating agents still meet. The drift
  is scaled by how much the other side has conceded compared with the agent itself
  (``cooperation``): a stubborn anchor gets a fraction of it, and the drift only ever heads
  for a *soft floor* (``margin`` of the way from the limit back to the opening) so the
  concession pattern never converges on the reservation price and gives it away. Only
  reciprocal concessions go past the soft floor, never past the limit.
- The other side's concessions count only inside a credible range (a buyer's offers below
  half the listing, a seller's above the listing count as that bound): opening absurdly and
  then "conceding" buys nothing.
- Acceptance depends on behaviour too: an offer as good as the agent's next price is always
  taken; an offer close to it (``accept_gap`` x listing, at least one rounding step: no cent
  ping-pong) only from a side that has been conceding. On the agent's last turn it accepts
  what clears a floor between its next price (stubborn counterpart: it still gives up
  ``LAST_TURN_GIVE`` of its room) and its limit (a fully reciprocating one); else it makes its
  last counter-offer (the other side may take it) or, with ``walk_away``, walks away.
- A committed side (one that has not moved: ``stubborn``) will not take a last counter-offer,
  so against it the last turn decides between its offer and no deal. An offer inside the
  limit is worth at least as much as no deal, so the agent takes it with probability
  ``deadline_take`` (a seeded coin per game) and otherwise holds as above. What keeps this
  from being a cave to farm is the private limit (drawn per game, ``draw_private_limit``): a
  person repeating one price does not know whether it is inside the limit, and a side that is
  still moving (a nibbler) never gets it: it may still take the agent's last counter-offer.
  Where the limit is the published formula (``private_limit=False``: ``reservation_spread``
  0), taking an offer at it is the old exploit, and the agent holds.
- A seller asked about the item before any price answers first (``answers_first``), once a
  game; a question about the price gets the price.
- The drift shares are per turn of a 15-turn game; a longer cap spreads them over its turns.

``limit`` lies between the agent's target (0) and its reservation price (1), so no
personality crosses its reservation. Prices are rounded the way people round them for the
item's price range and never move backwards. Small seeded jitter (+-``jitter``) on each
concession keeps the pattern from being read off turn by turn.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.negotiation.agents import DialogueState, round_price, rounding_step
from bot.negotiation.parser import is_question
from bot.negotiation.personality import DEFAULT_PERSONALITY, Personality
from bot.negotiation.turns import Act, Role, Turn

CREDIBLE_LOW = 0.5   # a buyer's offers below this x listing count as this (anchoring buys nothing)
CREDIBLE_HIGH = 1.0  # a seller's asks above the listing count as the listing
GAME_TURNS = 15  # the turn cap the drift shares are set for (the paper's, config.toml's default)
LAST_TURN_GIVE = 0.3  # on its last turn it takes an offer within this share of its room, whoever


@dataclass(frozen=True)
class PolicyParams:
    opening: float      # the buyer opens this fraction below its target; the seller at the listing
    reciprocity: float  # share of the other side's last concession given back
    drift_start: float  # share of the room to the soft floor conceded per turn on its own, early
    drift_end: float    # ... and on its last turns
    beta: float         # shape of the drift between them: < 1 holds back until late (Boulware)
    margin: float       # the soft floor: this share of the way from the limit back to the opening
    limit: float        # how far toward its reservation it may go: 0 = its target, 1 = reservation
    accept_gap: float   # accept a conceding side's offer within this fraction of the listing
    walk_away: bool     # on its last turn, quit rather than repeat its price
    chatter: float      # chance of an opening small-talk turn (a question about the item)
    deadline_take: float  # on its last turn, the chance it takes a committed side's offer inside its limit
    jitter: float = 0.2  # +- this share of random variation on each concession (seeded)


PERSONALITY_PARAMS: dict[Personality, PolicyParams] = {
    "aggressive": PolicyParams(opening=0.15, reciprocity=0.6, drift_start=0.03, drift_end=0.2,
                               beta=0.4, margin=0.3, limit=0.8, accept_gap=0.01, walk_away=True,
                               chatter=0.3, deadline_take=0.5),
    "fair": PolicyParams(opening=0.0, reciprocity=0.8, drift_start=0.06, drift_end=0.2, beta=0.7,
                         margin=0.15, limit=1.0, accept_gap=0.02, walk_away=False, chatter=0.5,
                         deadline_take=1.0),
    "passive": PolicyParams(opening=0.0, reciprocity=1.1, drift_start=0.12, drift_end=0.4,
                            beta=1.5, margin=0.05, limit=1.0, accept_gap=0.05, walk_away=False,
                            chatter=0.5, deadline_take=1.0),
}


@dataclass(frozen=True)
class Plan:
    act: Act
    price: float | None


# Words of a question about the price or a deal rather than about the item
_ABOUT_PRICE = re.compile(r"price|how much|\bcost|asking|want for|\bfirm\b|negotiab|lowest|"
                          r"\boffer|\bdeal\b|\bsell\b|\btake\b|\bpay\b|\$|\d", re.IGNORECASE)


def asks_about_item(text: str) -> bool:
    """Whether ``text`` asks something and names no price nor asks about one: a question about
    the item ("Can you tell me a little about it?", "Is it in good condition?")."""
    return is_question(text) and not _ABOUT_PRICE.search(text)


def answers_first(state: DialogueState) -> bool:
    """Whether a seller who has not spoken yet is answering a question about the item (the
    other side's last words: "Can you tell me a little about it?"): it answers before it names
    a price, as 83% of CraigslistBargains' sellers do (292 of 350 in that seat). Once per game
    at most: a seller who has spoken names its price however many questions come."""
    turns = state.turns
    return (bool(turns) and turns[-1].role is not state.role and asks_about_item(turns[-1].utterance)
            and not any(t.role is state.role for t in turns))


def _offers(turns: Sequence[Turn], role: Role) -> list[float]:
    return [t.price for t in turns if t.role is role and t.price is not None and t.act.proposes]


class ConcessionPolicy:
    def __init__(self, params: PolicyParams | Personality = DEFAULT_PERSONALITY, *,
                 seed: int | None = 0, private_limit: bool = True) -> None:
        """``private_limit``: whether the other side cannot know the agent's limit (a game's
        private draw, or an opponent that sees only its own utility); False where the limit is a
        published formula (``reservation_spread`` 0), where it never takes a committed offer."""
        self.params = PERSONALITY_PARAMS[params] if isinstance(params, str) else params
        self.seed = seed
        self.private_limit = private_limit

    def _rng(self, state: DialogueState) -> random.Random:
        return random.Random(f"{self.seed}|{state.scenario.id}|{state.role.value}|{state.turn_index}")

    # ---- the agent's view, in its own gain: g(p) = p for the seller, -p for the buyer

    @staticmethod
    def _sign(state: DialogueState) -> float:
        return 1.0 if state.role is Role.SELLER else -1.0

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

    def soft_floor(self, state: DialogueState) -> float:
        """Where the drift alone stops: short of the limit, so it never points at it."""
        limit = self.limit(state)
        return limit + self.params.margin * (self.opening(state) - limit)

    def _credible(self, state: DialogueState, price: float) -> float:
        listing = state.scenario.listing_price
        if state.role is Role.SELLER:  # the other side is the buyer
            return max(price, CREDIBLE_LOW * listing)
        return min(price, CREDIBLE_HIGH * listing)

    def their_concessions(self, state: DialogueState) -> tuple[float, float]:
        """(their last concession, their total), in price, inside the credible range."""
        s = self._sign(state)
        theirs = [self._credible(state, p) for p in _offers(state.turns, state.role.other)]
        if len(theirs) < 2:
            return 0.0, 0.0
        # the other side concedes when it moves toward this agent: its gain falls
        return max(0.0, s * (theirs[-1] - theirs[-2])), max(0.0, s * (theirs[-1] - theirs[0]))

    def my_concessions(self, state: DialogueState) -> float:
        mine = _offers(state.turns, state.role)
        return 0.0 if len(mine) < 2 else max(0.0, self._sign(state) * (mine[0] - mine[-1]))

    def cooperation(self, state: DialogueState) -> float:
        """How far the other side's concessions match this agent's, in [0, 1] (1 before
        either has moved): a stubborn side drifts toward 0."""
        eps = 0.02 * state.scenario.listing_price
        _, theirs = self.their_concessions(state)
        return min(1.0, (theirs + eps) / (self.my_concessions(state) + eps))

    def stubborn(self, state: DialogueState) -> bool:
        """Whether the other side has hardly moved after three offers or more, whatever this
        agent did (two sides that never moved are not "cooperating")."""
        offers = _offers(state.turns, state.role.other)
        mine = _offers(state.turns, state.role)
        if len(offers) < 3 or not mine:
            return False
        _, theirs = self.their_concessions(state)
        opening_gap = abs(self._credible(state, offers[0]) - mine[0])
        return theirs < min(0.05 * state.scenario.listing_price, 0.25 * opening_gap)

    def drift(self, state: DialogueState) -> float:
        """The share of the room to the soft floor conceded this turn on time alone."""
        k, total = self._turns_for(state)
        t = k / max(total - 1, 1)
        p = self.params
        share = p.drift_start + (p.drift_end - p.drift_start) * min(1.0, t ** (1 / p.beta))
        # the shares are per turn of a 15-turn game; a longer (shorter) cap spreads the same
        # drift over more (fewer) turns, so a generous cap does not drain the agent early
        return 1 - (1 - share) ** (GAME_TURNS / max(state.max_turns, 2))

    def next_price(self, state: DialogueState) -> float:
        sc = state.scenario
        s = self._sign(state)
        mine, theirs = state.my_offer, state.their_offer
        listing = sc.listing_price
        limit = self.limit(state)
        if mine is None:
            price = self.opening(state)
        else:
            rng = self._rng(state)
            noise = 1 + self.params.jitter * (2 * rng.random() - 1)
            coop = self.cooperation(state)
            room = max(0.0, s * (mine - self.soft_floor(state)))
            last, _ = self.their_concessions(state)
            step = self.drift(state) * room * (0.25 + 0.75 * coop) + self.params.reciprocity * last
            step *= noise
            if theirs is not None:
                step = min(step, abs(mine - theirs) / 2)  # never more than half way to them
            step = min(step, max(0.0, s * (mine - limit)))
            price = mine - s * step
        price = round_price(price, listing)
        if s > 0:
            price = max(price, round_price(limit, listing), sc.seller_reservation)
            if mine is not None:
                price = min(price, mine)  # never ask more than before
        else:
            price = min(price, round_price(limit, listing), sc.buyer_reservation)
            if mine is not None:
                price = max(price, mine)  # never offer less than before
        return price

    def takes_committed_offer(self, state: DialogueState) -> bool:
        """The game's coin: whether, on its last turn, it takes a committed side's offer inside
        its limit (one draw per game, seeded, so replays agree)."""
        if not self.private_limit:  # a published limit: taking offers at it is the old exploit
            return False
        coin = random.Random(f"{self.seed}|{state.scenario.id}|{state.role.value}|deadline").random()
        return coin < self.params.deadline_take

    def _good_for_me(self, state: DialogueState, offer: float, than: float) -> bool:
        return offer >= than if state.role is Role.SELLER else offer <= than

    def plan(self, state: DialogueState) -> Plan:
        sc, role, params = state.scenario, state.role, self.params
        theirs, mine = state.their_offer, state.my_offer
        rng = self._rng(state)
        if theirs is None and mine is None and state.turn_index < 2 and rng.random() < params.chatter:
            # open with a question about the item (buyer) or a word about it (seller)
            return Plan(Act.INQUIRE if role is Role.BUYER else Act.INFORM, None)
        if role is Role.SELLER and theirs is None and mine is None and answers_first(state):
            return Plan(Act.INFORM, None)
        price = self.next_price(state)
        last_turn = state.turns_left <= 2  # the counterpart would have at most one more turn
        committed = self.stubborn(state)
        coop = 0.0 if committed else self.cooperation(state)
        if theirs is not None and sc.within_reservation(role, theirs):
            if self._good_for_me(state, theirs, price):
                return Plan(Act.ACCEPT, theirs)
            gap = max(rounding_step(sc.listing_price), params.accept_gap * sc.listing_price)
            if abs(theirs - price) <= gap * coop:
                return Plan(Act.ACCEPT, theirs)
            if last_turn:
                # accept down to a floor that falls from the next price (stubborn side) to the
                # limit (a side that matched every concession)
                limit = self.limit(state)
                if committed and self.takes_committed_offer(state) and self._good_for_me(state, theirs, limit):
                    return Plan(Act.ACCEPT, theirs)
                floor = price - max(coop ** 2, LAST_TURN_GIVE) * (price - limit)
                if self._good_for_me(state, theirs, floor):
                    return Plan(Act.ACCEPT, theirs)
        if last_turn and theirs is not None and params.walk_away:
            return Plan(Act.QUIT, None)
        if mine is None:
            return Plan(Act.INIT_PRICE, price)
        if math.isclose(price, mine):
            return Plan(Act.INSIST, price)
        return Plan(Act.COUNTER_PRICE, price)
