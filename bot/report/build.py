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


def build_report(data: ReportData) -> dict[str, Any]:
    """The whole report as a JSON-ready dict (the other formats render it)."""
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
                       "meta": meta.get(name, {}), "metrics": metrics})

    return {
        "tournaments": [{"name": t.name, "kind": t.kind, "planned": t.planned,
                         "stored": sum(1 for n in negotiations if n.tournament == t.name),
                         "seed": t.seed, "started_at": t.started_at, "finished_at": t.finished_at,
                         "source": t.source} for t in data.tournaments],
        "metric_keys": keys,
        "leaderboard": leaderboard(negotiations),
        "comparisons": comparisons(negotiations, meta),
        "paper": paper_comparisons(negotiations, meta),
        "agents": agents,
        "pairings": pairings,
    }
