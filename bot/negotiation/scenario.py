"""Scenario: the item, its listing price, and each side's target and reservation price."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from bot.errors import ScenarioError
from bot.negotiation.turns import Role

# CoCoA's rule bots gave the seller a bottom line of 0.7 x listing; the buyer's ceiling is the
# listing price. Both are configurable ([negotiation] in config.toml).
DEFAULT_SELLER_BOTTOM_FRACTION = 0.7
DEFAULT_BUYER_CEILING_FRACTION = 1.0
# In games with people the bot's own limit is private: drawn per game from the configured
# fraction +- this share of the listing ([negotiation] reservation_spread).
DEFAULT_RESERVATION_SPREAD = 0.175


def rounding_step(listing: float) -> float:
    """The step people round prices to for an item listed at ``listing``."""
    if listing < 20:
        return 0.5
    if listing < 100:
        return 1.0
    if listing < 1000:
        return 5.0
    if listing < 10000:
        return 25.0
    return 100.0


def round_price(price: float, listing: float) -> float:
    """Round like people do for the item's price range: $7.50, $45, $120, $1,250."""
    step = rounding_step(listing)
    return round(price / step) * step or step



def _positive(value: Any, name: str, scenario_id: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(f"scenario {scenario_id!r}: {name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ScenarioError(f"scenario {scenario_id!r}: {name} must be a positive price, got {value!r}")
    return v


@dataclass(frozen=True)
class Scenario:
    """One negotiation setting.

    The seller never sells below ``seller_reservation`` (its bottom line) and the buyer never
    pays above ``buyer_reservation`` (its ceiling). Targets are what each side aims for.
    """

    id: str
    title: str
    listing_price: float
    buyer_target: float
    seller_target: float
    buyer_reservation: float
    seller_reservation: float
    description: str = ""
    category: str = ""

    def __post_init__(self) -> None:
        sid = str(self.id)
        object.__setattr__(self, "id", sid)
        for name in ("listing_price", "buyer_target", "seller_target",
                     "buyer_reservation", "seller_reservation"):
            object.__setattr__(self, name, _positive(getattr(self, name), name, sid))
        if self.buyer_target > self.seller_target:
            raise ScenarioError(
                f"scenario {sid!r}: buyer target {self.buyer_target:g} is above seller target "
                f"{self.seller_target:g}; there is nothing to negotiate"
            )
        if self.seller_reservation > self.seller_target:
            raise ScenarioError(
                f"scenario {sid!r}: seller bottom line {self.seller_reservation:g} is above its "
                f"target {self.seller_target:g}"
            )
        if self.buyer_reservation < self.buyer_target:
            raise ScenarioError(
                f"scenario {sid!r}: buyer ceiling {self.buyer_reservation:g} is below its "
                f"target {self.buyer_target:g}"
            )

    @classmethod
    def build(
        cls,
        *,
        id: str,
        title: str,
        listing_price: float,
        buyer_target: float,
        seller_target: float | None = None,
        description: str = "",
        category: str = "",
        seller_bottom_fraction: float = DEFAULT_SELLER_BOTTOM_FRACTION,
        buyer_ceiling_fraction: float = DEFAULT_BUYER_CEILING_FRACTION,
        buyer_reservation: float | None = None,
        seller_reservation: float | None = None,
    ) -> Scenario:
        """Make a scenario, deriving reservation prices from the listing when not given.

        The seller's bottom line is ``seller_bottom_fraction`` x listing (never above its own
        target); the buyer's ceiling is ``buyer_ceiling_fraction`` x listing (never below its
        own target).
        """
        listing = _positive(listing_price, "listing_price", str(id))
        seller_t = listing if seller_target is None else _positive(seller_target, "seller_target", str(id))
        buyer_t = _positive(buyer_target, "buyer_target", str(id))
        if seller_reservation is None:
            seller_reservation = min(seller_bottom_fraction * listing, seller_t)
        if buyer_reservation is None:
            buyer_reservation = max(buyer_ceiling_fraction * listing, buyer_t)
        return cls(
            id=str(id), title=title, listing_price=listing, buyer_target=buyer_t,
            seller_target=seller_t, buyer_reservation=buyer_reservation,
            seller_reservation=seller_reservation, description=description, category=category,
        )

    def target(self, role: Role) -> float:
        return self.buyer_target if Role.parse(role) is Role.BUYER else self.seller_target

    def reservation(self, role: Role) -> float:
        return self.buyer_reservation if Role.parse(role) is Role.BUYER else self.seller_reservation

    def within_reservation(self, role: Role, price: float) -> bool:
        """Whether ``role`` may agree to ``price`` without crossing its reservation."""
        if Role.parse(role) is Role.SELLER:
            return price >= self.seller_reservation - 1e-9
        return price <= self.buyer_reservation + 1e-9

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "description": self.description,
            "category": self.category, "listing_price": self.listing_price,
            "buyer_target": self.buyer_target, "seller_target": self.seller_target,
            "buyer_reservation": self.buyer_reservation,
            "seller_reservation": self.seller_reservation,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        return cls(**{k: data[k] for k in (
            "id", "title", "listing_price", "buyer_target", "seller_target",
            "buyer_reservation", "seller_reservation") }, description=data.get("description", ""),
            category=data.get("category", ""))


def draw_private_limit(scenario: Scenario, role: Role | str, *, seed: int | str,
                       spread: float = DEFAULT_RESERVATION_SPREAD) -> Scenario:
    """``scenario`` with ``role``'s reservation price drawn for one game.

    The draw is uniform in (the scenario's reservation +- ``spread`` x listing) cut at
    ``role``'s target (a seller's bottom line never above its target, a buyer's ceiling never
    below its own: the part of the range past the target is left out, not piled on the target,
    where the agent would have no room and pay its limit), seeded by ``seed`` and the scenario,
    and rounded the way people round prices. No formula gives it away; the game's record
    carries it, so the result card can reveal it. ``spread`` 0 keeps the scenario's own
    reservation.
    """
    role = Role.parse(role)
    if not 0 <= spread < 1:
        raise ScenarioError(f"reservation spread must be in [0, 1), got {spread!r}")
    if spread == 0:
        return scenario
    listing = scenario.listing_price
    rng = random.Random(f"private-limit|{seed}|{scenario.id}|{role.value}")
    lo, hi = scenario.reservation(role) - spread * listing, scenario.reservation(role) + spread * listing
    if role is Role.SELLER:
        hi = max(min(hi, scenario.seller_target), lo)
    else:
        lo = min(max(lo, scenario.buyer_target), hi)
    drawn = round_price(rng.uniform(lo, hi), listing)
    if role is Role.SELLER:
        return replace(scenario, seller_reservation=min(drawn, scenario.seller_target))
    return replace(scenario, buyer_reservation=max(drawn, scenario.buyer_target))
