"""Rationality guardrails, applied to every turn an agent (LLM or rule) proposes.

- An accept is only possible when the counterpart has a standing offer, and never beyond the
  agent's reservation price: a refused accept becomes a counter-offer.
- A proposal beyond the reservation is clamped to it; a seller never asks above the listing.
- A proposal no better for the agent than what the counterpart already offers becomes an
  accept of that offer (nobody counters 75, or 80, to a buyer who offered 80).
- The utterance the counterpart reads states no price other than the turn's price.

Human turns are never guarded: people may say anything; the guard protects the bot.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from bot.negotiation.parser import parse_utterance
from bot.negotiation.prompts import money
from bot.negotiation.scenario import Scenario
from bot.negotiation.turns import Act, Role, Turn, standing_price

PRICE_TOLERANCE = 0.005  # relative: $100 vs $100.40 is the same price in text

# A number as people write prices: "$1,200", "1.2k", "90.50", "150", "90 euros", "£90".
_CURRENCY_WORD = r"(?:dollars?|bucks?|usd|euros?|eur|gbp|quid|pounds?)\b"
_NUMBER = re.compile(r"(?:[$€£]\s?)?\d[\d,]*(?:\.\d+)?(?:\s?[kK]\b)?"
                     rf"(?:\s?{_CURRENCY_WORD})?", re.IGNORECASE)
_CURRENCY_TAIL = re.compile(rf"\s*{_CURRENCY_WORD}$", re.IGNORECASE)


def _same_price(a: float, b: float) -> bool:
    return abs(a - b) <= PRICE_TOLERANCE * max(abs(a), abs(b), 1.0)


def _literal_value(text: str) -> float | None:
    raw = _CURRENCY_TAIL.sub("", text)
    for mark in "$€£,":
        raw = raw.replace(mark, "")
    raw = raw.strip()
    scale = 1.0
    if raw[-1:] in "kK":
        raw, scale = raw[:-1].strip(), 1000.0
    try:
        return float(raw) * scale
    except ValueError:
        return None


def stated_prices(utterance: str, role: Role | None = None) -> tuple[float, ...]:
    """Every price the utterance states, as the counterpart (or a person) would read it."""
    return parse_utterance(utterance, role=role).prices


def utterance_problem(turn: Turn, allowed: Sequence[float] = ()) -> str | None:
    """Why the utterance contradicts the turn's price, or None when it does not.

    ``allowed`` are prices already on the table (the standing offers). A turn without a price
    may mention them ("$150 is too low"); a priced turn may mention them only beside its own
    price ("$150 is too low, $185?"), never instead of it ("$150 and it's yours" with a price
    of $185 is a contradiction).
    """
    stated = stated_prices(turn.utterance, turn.role)
    if turn.price is not None and not any(_same_price(p, turn.price) for p in stated):
        allowed = ()
    ok = [p for p in (turn.price, *allowed) if p is not None]
    wrong = [p for p in stated if not any(_same_price(p, q) for q in ok)]
    if not wrong:
        return None
    if turn.price is None:
        return f"the text states {money(wrong[0])} but the turn proposes no price"
    return f"the text states {money(wrong[0])} but the turn's price is {money(turn.price)}"


def rewrite_prices(utterance: str, stated: Sequence[float], price: float | None) -> str:
    """Replace every mention of a price in ``stated`` with ``price`` (or drop it when None)."""
    if not stated:
        return utterance

    def sub(match: re.Match[str]) -> str:
        value = _literal_value(match.group(0))
        if value is None or not any(_same_price(value, s) for s in stated):
            return match.group(0)
        return money(price) if price is not None else "that"

    return _NUMBER.sub(sub, utterance)


def _refusal(role: Role, price: float) -> str:
    return (f"I can't go that low. {money(price)} is the best I can do." if role is Role.SELLER
            else f"That's more than I can spend. I can do {money(price)}.")


def _bounded(scenario: Scenario, role: Role, price: float) -> float:
    if role is Role.SELLER:
        ceiling = max(scenario.listing_price, scenario.seller_target)
        return min(max(price, scenario.seller_reservation), ceiling)
    return min(price, scenario.buyer_reservation)


def guard_turn(turn: Turn, scenario: Scenario, history: Sequence[Turn]) -> Turn:
    """The turn made rational; ``turn.guard`` says what changed (None when nothing did)."""
    role = turn.role
    theirs = standing_price(history, role.other)
    mine = standing_price(history, role)
    notes: list[str] = []

    if turn.act is Act.ACCEPT:
        if theirs is None:
            price = _bounded(scenario, role, mine if mine is not None else scenario.target(role))
            act = Act.COUNTER_PRICE if mine is not None else Act.INIT_PRICE
            turn = replace(turn, act=act, price=price,
                           utterance=f"How about {money(price)}?")
            notes.append("accept with no offer on the table became a proposal")
        elif not scenario.within_reservation(role, theirs):
            price = _bounded(scenario, role, mine if mine is not None else scenario.target(role))
            turn = replace(turn, act=Act.COUNTER_PRICE, price=price, utterance=_refusal(role, price))
            notes.append(f"accept of {money(theirs)} beyond the reservation refused")
        else:
            if turn.price != theirs:  # an accept takes the offer as it stands, to the cent
                turn = replace(turn, price=theirs)
            stated = stated_prices(turn.utterance, role)
            if any(not _same_price(p, theirs) for p in stated):
                turn = replace(turn, utterance=rewrite_prices(turn.utterance, stated, theirs))
                notes.append("accept text restated to the accepted price")
    elif turn.price is not None and not turn.act.terminal:
        bounded = _bounded(scenario, role, turn.price)
        # Exact, not PRICE_TOLERANCE: $200 against a $199 ceiling is the same price in text
        # but a violation in the deal.
        if bounded != turn.price:
            notes.append(f"price {money(turn.price)} clamped to {money(bounded)}")
            turn = replace(turn, price=bounded,
                           utterance=rewrite_prices(turn.utterance, stated_prices(turn.utterance, role), bounded))
        worse = theirs is not None and (
            (role is Role.SELLER and turn.price <= theirs) or (role is Role.BUYER and turn.price >= theirs))
        if worse and scenario.within_reservation(role, theirs):
            notes.append(f"proposal {money(turn.price)} worse than the standing offer: accepted {money(theirs)}")
            turn = replace(turn, act=Act.ACCEPT, price=theirs, utterance=f"Deal, {money(theirs)} works for me.")

    allowed = [p for p in (theirs, mine) if p is not None]
    problem = utterance_problem(turn, allowed)
    if problem:
        keep = allowed if turn.price is None else []
        stated = [p for p in stated_prices(turn.utterance, role)
                  if not any(_same_price(p, q) for q in (turn.price, *keep) if q is not None)]
        turn = replace(turn, utterance=rewrite_prices(turn.utterance, stated, turn.price))
        if utterance_problem(turn, allowed):  # could not rewrite in place: drop the text's prices
            turn = replace(turn, utterance=(f"{money(turn.price)}." if turn.price else "Let me think about it."))
        notes.append(problem)
    if notes:
        turn = replace(turn, guard="; ".join(notes if turn.guard is None else [turn.guard, *notes]))
    return turn


def violates_reservation(turn: Turn, scenario: Scenario, history: Sequence[Turn]) -> bool:
    """Whether ``turn`` (by a bot) crosses its reservation: a proposal beyond it, or an
    accept of a counterpart offer beyond it."""
    if turn.act is Act.ACCEPT:
        theirs = standing_price(history, turn.role.other)
        return theirs is not None and not scenario.within_reservation(turn.role, theirs)
    return turn.price is not None and not scenario.within_reservation(turn.role, turn.price)
