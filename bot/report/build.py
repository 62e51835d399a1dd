"""The whole report as one JSON-ready dict, which every output format renders."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from bot.report.compare import comparisons, leaderboard
from bot.report.data import ReportData
from bot.report.paper import paper_comparisons
from bot.report.stats import metric_keys, own_share, pairing_groups, pairing_labels, summarise

if TYPE_CHECKING:
    from bot.store import NegotiationRow


DEFAULT_FALLBACK_FLAG = 0.1  # [tournament] fallback_flag


def fallback_play(rows: list[NegotiationRow], name: str, data: ReportData,
                  flag: float) -> dict[str, Any]:
    """Agent ``name``'s fallback play over ``rows``: its turns in its own seat(s), how many of
    them were fallback turns (the model failed or answered unusably, so a rule move was
    played), the share, and whether the share passes ``flag``."""
    turns = fallback = touched = 0
    for r in rows:
        for seat in ("buyer", "seller"):
            if getattr(r, seat) == name:
                t, f = data.turn_counts.get((r.id, seat), (0, 0))
                turns, fallback, touched = turns + t, fallback + f, touched + (f > 0)
    share = fallback / turns if turns else None
    return {"turns": turns, "fallback_turns": fallback, "share": share,
            "negotiations_with_fallback": touched, "flagged": share is not None and share > flag}


def build_report(data: ReportData, *, fallback_flag: float = DEFAULT_FALLBACK_FLAG
                 ) -> dict[str, Any]:
    """The whole report as a JSON-ready dict (the other formats render it).

    Every agent row carries its ``fallback`` play; an agent whose share of fallback turns
    passes ``fallback_flag`` is flagged (and listed in ``flagged``): its results are mostly
    rule-based play, not its model's."""
    if not 0 <= fallback_flag <= 1:
        raise ValueError(f"fallback_flag must be in [0, 1], got {fallback_flag}")
    negotiations = data.negotiations
    keys = metric_keys(negotiations)
    meta = data.agents
    kinds = {t.name: t.kind for t in data.tournaments}

    groups = pairing_groups(negotiations)
    labels = pairing_labels(groups)
    pairings = []
    for (tournament, buyer, seller), rows in groups.items():
        pairings.append({
            "tournament": tournament, "kind": kinds.get(tournament), "buyer": buyer,
            "seller": seller, "label": labels[(tournament, buyer, seller)], "n": len(rows),
            "outcomes": dict(Counter(r.outcome for r in rows)),
            "metrics": {k: summarise(r.metrics.get(k) for r in rows) for k in keys},
        })

    by_agent: dict[tuple[str, str], list[NegotiationRow]] = defaultdict(list)
    for n in negotiations:
        by_agent[(n.buyer, "buyer")].append(n)
        by_agent[(n.seller, "seller")].append(n)
    agents = []
    for (name, seat), rows in sorted(by_agent.items()):
        metrics = {k: summarise(r.metrics.get(k) for r in rows) for k in keys}
        metrics["surplus_share"] = summarise(own_share(r, seat) for r in rows)
        agents.append({"agent": name, "seat": seat, "n": len(rows),
                       "tournaments": sorted({r.tournament for r in rows}),
                       "meta": meta.get(name, {}), "metrics": metrics,
                       "fallback": fallback_play(rows, name, data, fallback_flag)})
    board = leaderboard(negotiations)
    for row in board:
        mine = [n for n in negotiations if row["agent"] in (n.buyer, n.seller)]
        row["fallback"] = fallback_play(mine, row["agent"], data, fallback_flag)

    return {
        "tournaments": [{"name": t.name, "kind": t.kind, "planned": t.planned,
                         "stored": sum(1 for n in negotiations if n.tournament == t.name),
                         "seed": t.seed, "started_at": t.started_at, "finished_at": t.finished_at,
                         "source": t.source} for t in data.tournaments],
        "metric_keys": keys,
        "fallback_flag": fallback_flag,
        "flagged": [{"agent": a["agent"], "seat": a["seat"], "share": a["fallback"]["share"]}
                    for a in agents if a["fallback"]["flagged"]],
        "leaderboard": board,
        "comparisons": comparisons(negotiations, meta),
        "paper": paper_comparisons(negotiations, meta),
        "agents": agents,
        "pairings": pairings,
    }
