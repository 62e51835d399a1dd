"""What a report reads from the database: the chosen tournaments, their negotiations and
(for charts) their turns."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.errors import DataError

if TYPE_CHECKING:
    from bot.store import NegotiationRow, Store, TournamentRow, TurnRow


@dataclass
class ReportData:
    tournaments: list[TournamentRow]
    negotiations: list[NegotiationRow]
    turns: dict[int, list[TurnRow]] | None  # negotiation id -> its turns (for charts)
    # (negotiation id, role) -> (turns, fallback turns): each agent's share of fallback play
    turn_counts: dict[tuple[int, str], tuple[int, int]] = field(default_factory=dict)

    @property
    def agents(self) -> dict[str, dict[str, Any]]:
        """Agent name -> metadata (kind, family, cot, personality, scale, ...), from the
        tournaments' snapshots (a later tournament's entry wins)."""
        out: dict[str, dict[str, Any]] = {}
        for t in self.tournaments:
            out.update(t.agents)
        return out


def select_tournaments(all_tournaments: Sequence[TournamentRow],
                       patterns: Sequence[str] | None) -> list[TournamentRow]:
    """Tournaments whose name matches any of ``patterns`` (exact names or shell globs such as
    ``'agreemate/*'``); all of them when no pattern is given."""
    if not patterns:
        return list(all_tournaments)
    chosen = []
    for pattern in patterns:
        matched = [t for t in all_tournaments if fnmatch.fnmatchcase(t.name, pattern)]
        if not matched:
            names = ", ".join(t.name for t in all_tournaments[:8]) or "none"
            more = f" and {len(all_tournaments) - 8} more" if len(all_tournaments) > 8 else ""
            raise DataError(f"no tournament matches {pattern!r}; the database holds: {names}{more}")
        chosen += [t for t in matched if t not in chosen]
    return chosen


async def load_report_data(store: Store, patterns: Sequence[str] | None = None, *,
                           with_turns: bool = False) -> ReportData:
    tournaments = select_tournaments(await store.tournaments(), patterns)
    if not tournaments:
        raise DataError(f"{store.path} holds no tournaments yet: run `haggle tournament` or "
                        f"`haggle import-agreemate` first")
    ids = [t.id for t in tournaments]
    negotiations = await store.negotiations(ids)
    turns = await store.turns(ids) if with_turns else None
    return ReportData(tournaments, negotiations, turns, await store.turn_counts(ids))
