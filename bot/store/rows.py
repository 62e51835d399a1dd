"""The rows the store returns (frozen dataclasses), and the conversions its queries share."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.errors import StoreError


@dataclass(frozen=True)
class TournamentRow:
    id: int
    name: str
    kind: str  # "tournament" or "reference"
    config: dict[str, Any]
    agents: dict[str, Any]
    models: dict[str, Any]
    seed: int | None
    planned: int
    source: str | None
    started_at: str
    finished_at: str | None
    stored: int  # negotiations stored so far


@dataclass(frozen=True)
class NegotiationRow:
    id: int
    tournament: str
    buyer: str
    seller: str
    scenario_id: str
    repetition: int
    scenario: dict[str, Any]
    first_mover: str
    max_turns: int
    outcome: str
    deal_price: float | None
    error: str | None
    started_at: str | None
    seconds: float | None
    metrics: dict[str, Any]
    extra: dict[str, Any]

    @property
    def pairing(self) -> str:
        return pairing_key(self.buyer, self.seller)


@dataclass(frozen=True)
class TurnRow:
    negotiation_id: int
    idx: int
    role: str
    act: str
    label: str | None
    price: float | None
    utterance: str
    thought: str | None
    seconds: float | None
    prompt_tokens: int | None
    prompt_tokens_evaluated: int | None
    completion_tokens: int | None
    repaired: bool
    fallback: bool
    guard: str | None


@dataclass(frozen=True)
class GameRow:
    id: int
    guild_id: int | None
    channel_id: int
    thread_id: int | None
    player_id: int
    scenario_id: str
    scenario: dict[str, Any]
    agent: str
    human_role: str
    status: str  # "active" or "finished"
    state: dict[str, Any]
    outcome: str | None
    deal_price: float | None
    metrics: dict[str, Any] | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class PlayerStanding:
    """A person's record over finished games (Store.player_standings)."""
    player_id: int
    name: str
    games: int
    deals: int
    share_total: float
    best: float | None

    @property
    def mean_share(self) -> float | None:
        return self.share_total / self.deals if self.deals else None


@dataclass(frozen=True)
class GuildSettings:
    guild_id: int
    default_agent: str | None = None
    scenario_set: str | None = None
    max_turns: int | None = None
    game_channel: int | None = None
    settings: Mapping[str, Any] | None = None
    updated_at: str | None = None


@dataclass(frozen=True)
class DailyChallengeRow:
    """A server's daily challenge (table daily_challenges, migration 2)."""

    guild_id: int
    day: str
    scenario: dict[str, Any]
    agent: str
    human_role: str
    seed: int
    channel_id: int | None
    created_at: str
    announced_at: str | None


def pairing_key(buyer: str, seller: str) -> str:
    return f"{buyer} vs {seller}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def to_json(value: Any) -> str:
    """A JSON column's text (compact, UTF-8, finite numbers only)."""
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except ValueError as exc:  # NaN or infinity: a bug upstream, not something to store
        raise StoreError(f"cannot store a non-finite number in JSON: {exc}") from None


def to_flag(value: Any) -> int:
    """A yes/no column's value."""
    return 1 if value else 0
