"""Scenario: the item, its listing price, and each side's target and reservation price."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from bot.errors import ScenarioError
from bot.negotiation.turns import Role

# CoCoA's rule bots gave the seller a bottom line of 0.7 x listing; the buyer's ceiling is the
# listing price. Both are configurable ([negotiation] in config.toml).
DEFAULT_SELLER_BOTTOM_FRACTION = 0.7
DEFAULT_BUYER_CEILING_FRACTION = 1.0


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
    ) -> "Scenario":
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
    def from_dict(cls, data: Mapping[str, Any]) -> "Scenario":
        return cls(**{k: data[k] for k in (
            "id", "title", "listing_price", "buyer_target", "seller_target",
            "buyer_reservation", "seller_reservation") }, description=data.get("description", ""),
            category=data.get("category", ""))
