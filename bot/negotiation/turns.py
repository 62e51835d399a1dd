"""Acts, roles, turns and outcomes: the vocabulary of a negotiation.

A turn is an action-utterance pair (AgreeMate): a dialogue act, an optional price and the text
the counterpart reads, plus an optional hidden ``thought`` (chain-of-thought mode) that the
counterpart never sees, and per-turn accounting filled in by backends and the runner.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any

from bot.errors import TurnError


class Role(str, Enum):
    BUYER = "buyer"
    SELLER = "seller"

    @property
    def other(self) -> Role:
        return Role.SELLER if self is Role.BUYER else Role.BUYER

    @classmethod
    def parse(cls, value: str | Role) -> Role:
        try:
            return cls(str(value.value if isinstance(value, Role) else value).strip().lower())
        except ValueError:
            raise TurnError(f"unknown role {value!r}: use 'buyer' or 'seller'") from None


class Act(str, Enum):
    """AgreeMate's act set, a superset of CraigslistBargain's coarse intents."""

    INTRO = "intro"
    INIT_PRICE = "init-price"
    OFFER = "offer"
    COUNTER_PRICE = "counter-price"
    INSIST = "insist"
    AGREE = "agree"
    DISAGREE = "disagree"
    ACCEPT = "accept"
    REJECT = "reject"
    QUIT = "quit"
    INFORM = "inform"
    INQUIRE = "inquire"
    VAGUE_PRICE = "vague-price"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: str | Act) -> Act:
        """Map a label to an Act; the dataset's ``inquiry`` is ``inquire`` and ``""`` unknown."""
        if isinstance(value, Act):
            return value
        key = str(value).strip().lower()
        key = _ALIASES.get(key, key)
        try:
            return cls(key)
        except ValueError:
            allowed = ", ".join(a.value for a in cls)
            raise TurnError(f"unknown act {value!r}; expected one of: {allowed}") from None

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_ACTS

    @property
    def proposes(self) -> bool:
        """Whether a price on a turn with this act becomes the speaker's standing offer.

        Every non-terminal act does (people state prices while informing or insisting);
        the price on an accept only echoes the offer it takes.
        """
        return self not in TERMINAL_ACTS


_ALIASES = {"inquiry": "inquire", "": "unknown", "init_price": "init-price",
            "counter_price": "counter-price", "vague_price": "vague-price"}

TERMINAL_ACTS = frozenset({Act.ACCEPT, Act.REJECT, Act.QUIT})
# Acts that must carry a price.
PRICED_ACTS = frozenset({Act.INIT_PRICE, Act.OFFER, Act.COUNTER_PRICE})


class Outcome(str, Enum):
    DEAL = "deal"              # an accept closed at the counterpart's standing price
    REJECT = "reject"          # a side rejected and ended the negotiation
    QUIT = "quit"              # a side walked away
    TURN_LIMIT = "turn_limit"  # the turn cap ended it with no deal
    TIMEOUT = "timeout"        # a person stopped answering (inactivity timeout)
    ABANDONED = "abandoned"    # a person left (end of input, deleted thread)
    ERROR = "error"            # an agent raised or returned an invalid turn


def check_price(price: Any, *, what: str = "price") -> float | None:
    """Return ``price`` as a finite positive float, or None; raise TurnError otherwise."""
    if price is None:
        return None
    if isinstance(price, bool) or not isinstance(price, (int, float)):
        raise TurnError(f"{what} must be a number or null, got {price!r}")
    value = float(price)
    if not math.isfinite(value) or value <= 0:
        raise TurnError(f"{what} must be a finite positive number, got {price!r}")
    return value


@dataclass(frozen=True)
class Turn:
    """One action-utterance pair, plus accounting.

    ``price`` is None when the turn names no price. ``thought`` is the hidden chain of thought
    (never shown to the counterpart). The accounting fields are filled by the agent/backend
    (tokens, repaired, fallback, guard) and by the runner (seconds).
    """

    role: Role
    act: Act
    price: float | None
    utterance: str = ""
    thought: str | None = None
    seconds: float = 0.0
    prompt_tokens: int | None = None
    prompt_tokens_evaluated: int | None = None
    completion_tokens: int | None = None
    repaired: bool = False
    fallback: bool = False
    guard: str | None = None  # what the guardrail changed, if anything
    # the agent's model failed on this turn (unreachable, failed to load, HTTP error, timeout):
    # the turn is a fallback, and ``guard`` says why. Not stored as a column (guard is).
    model_failed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role.parse(self.role))
        object.__setattr__(self, "act", Act.parse(self.act))
        object.__setattr__(self, "price", check_price(self.price))
        if not isinstance(self.utterance, str):
            raise TurnError(f"utterance must be text, got {type(self.utterance).__name__}")
        if self.act in PRICED_ACTS and self.price is None:
            raise TurnError(f"a {self.act.value} turn needs a price")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["role"] = self.role.value
        d["act"] = self.act.value
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Turn:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise TurnError(f"unknown turn field(s): {', '.join(sorted(unknown))}")
        return cls(**dict(data))


def standing_price(turns: list[Turn] | tuple[Turn, ...], role: Role) -> float | None:
    """The last price ``role`` put on the table (its standing offer), or None."""
    for turn in reversed(turns):
        if turn.role is role and turn.price is not None and turn.act.proposes:
            return turn.price
    return None
