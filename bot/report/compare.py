"""Comparisons and the leaderboard.

- Comparisons (AgreeMate's tables): agents that differ only in chain of thought, in
  personality or in model scale (from the agent metadata each tournament stores), per seat.
- Leaderboard: a Bradley-Terry model over the deals, where a deal is a game the buyer "wins"
  by its surplus share (a fractional result) and the seller by the rest, fitted by Newton's
  method with a weak Gaussian prior (so an agent that always wins stays finite), on the Elo
  scale (1500 = the average agent, 400 points = 10:1 odds). Negotiations without a deal count
  in the agreement rate, not in the rating. Ratings compare only agents connected by games:
  the ``group`` column says which agents were rated together.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bot.negotiation.personality import personality_rank
from bot.report.stats import SEATS, own_share, scale_value, summarise

if TYPE_CHECKING:
    from bot.store import NegotiationRow

# The paper's metrics plus agreement and surplus: what comparison tables show.
COMPARE_KEYS = ("agreed", "surplus_share", "fairness", "bias", "aggressiveness", "dialogue_length",
                "concession_rate", "probing_ratio", "relative_efficiency")
ELO_SCALE = 400.0 / math.log(10.0)
PRIOR_PRECISION = 0.1  # Gaussian prior on strengths (sd ~3.2 logits, ~550 Elo): weak
_FIELDS = ("source", "family", "cot", "personality", "scale")


def _order(dimension: str, value: Any) -> Any:
    if dimension == "scale":
        return scale_value(value)
    if dimension == "personality":
        return personality_rank(value)
    return (str(value))


def comparisons(negotiations: Sequence[NegotiationRow],
                meta: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """For each of CoT, personality and scale: agents in the same seat whose metadata differ
    only there, each value's negotiations summarised on COMPARE_KEYS."""
    by_agent_seat: dict[tuple[str, str], list[NegotiationRow]] = defaultdict(list)
    for n in negotiations:
        by_agent_seat[(n.buyer, "buyer")].append(n)
        by_agent_seat[(n.seller, "seller")].append(n)
    out = []
    for dimension in ("cot", "personality", "scale"):
        for seat in SEATS:
            sets: dict[tuple, dict[Any, list[str]]] = defaultdict(lambda: defaultdict(list))
            for name, s in by_agent_seat:
                m = meta.get(name)
                if s != seat or not m or m.get(dimension) is None:
                    continue
                fixed = tuple((f, m.get(f)) for f in _FIELDS if f != dimension)
                sets[fixed][m[dimension]].append(name)
            for fixed, values in sets.items():
                if len(values) < 2:
                    continue
                rows = []
                for value in sorted(values, key=lambda v: _order(dimension, v)):
                    names = sorted(values[value])
                    negs = [n for name in names for n in by_agent_seat[(name, seat)]]
                    metrics = {k: summarise(
                        (own_share(n, seat) if k == "surplus_share" else n.metrics.get(k))
                        for n in negs) for k in COMPARE_KEYS}
                    rows.append({"value": value, "agents": names, "n": len(negs),
                                 "metrics": metrics})
                out.append({"dimension": dimension, "seat": seat, "fixed": dict(fixed),
                            "rows": rows})
    return out


# --------------------------------------------------------------------------- the leaderboard


def bradley_terry(games: Sequence[tuple[str, str, float]], *, prior: float = PRIOR_PRECISION,
                  iterations: int = 100) -> dict[str, tuple[float, float]]:
    """Strengths (logits, mean 0 within each connected group) and their standard errors.

    Each game ``(a, b, w)`` says ``a`` scored ``w`` in [0, 1] against ``b``; P(a beats b) =
    sigmoid(theta_a - theta_b). Maximises the log-likelihood minus prior/2 * |theta|^2 by
    Newton's method (concave, so it converges in a handful of steps).
    """
    import numpy as np

    players = sorted({p for a, b, _ in games for p in (a, b)})
    if not players:
        return {}
    index = {p: i for i, p in enumerate(players)}
    a = np.array([index[g[0]] for g in games])
    b = np.array([index[g[1]] for g in games])
    w = np.array([min(1.0, max(0.0, float(g[2]))) for g in games])
    k = len(players)
    theta = np.zeros(k)
    hessian = -prior * np.eye(k)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(theta[a] - theta[b])))
        residual = w - p
        gradient = np.bincount(a, residual, k) - np.bincount(b, residual, k) - prior * theta
        weight = p * (1.0 - p)
        hessian = -prior * np.eye(k)
        np.add.at(hessian, (a, a), -weight)
        np.add.at(hessian, (b, b), -weight)
        np.add.at(hessian, (a, b), weight)
        np.add.at(hessian, (b, a), weight)
        step = np.linalg.solve(hessian, gradient)
        theta = theta - step
        if np.max(np.abs(step)) < 1e-10:
            break
    # Only differences of strengths are identified: report each strength relative to the mean
    # of its connected group, with the standard error of that contrast (P C P, where C is the
    # posterior covariance and P centres each group).
    covariance = np.linalg.inv(-hessian)
    group = _components(((players[i], players[j]) for i, j in zip(a, b, strict=False)), players)
    centring = np.eye(k)
    for g in set(group.values()):
        members = [index[p] for p in players if group[p] == g]
        centring[np.ix_(members, members)] -= 1.0 / len(members)
    theta = centring @ theta
    se = np.sqrt(np.clip(np.diag(centring @ covariance @ centring.T), 0.0, None))
    return {p: (float(theta[i]), float(se[i])) for p, i in index.items()}


def _components(edges: Iterable[tuple[str, str]], nodes: Iterable[str]) -> dict[str, int]:
    parent = {n: n for n in nodes}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for x, y in edges:
        parent[find(x)] = find(y)
    roots: dict[str, int] = {}
    # Number groups by size (largest first), then name, so the numbering is stable.
    members: dict[str, list[str]] = defaultdict(list)
    for n in parent:
        members[find(n)].append(n)
    ordered = sorted(members.values(), key=lambda m: (-len(m), min(m)))
    for i, group in enumerate(ordered, 1):
        for n in group:
            roots[n] = i
    return roots


def leaderboard(negotiations: Sequence[NegotiationRow]) -> list[dict[str, Any]]:
    """One row per agent: Bradley-Terry rating over deals by surplus share, agreement rate,
    own surplus share; sorted by rating (agents without a rated deal last)."""
    games = []
    for n in negotiations:
        share = n.metrics.get("buyer_surplus_share")
        if n.deal_price is not None and share is not None:
            games.append((n.buyer, n.seller, share))
    fitted = bradley_terry(games)
    everyone = sorted({x for n in negotiations for x in (n.buyer, n.seller)})
    group = _components(((g[0], g[1]) for g in games), everyone)
    rows = []
    for name in everyone:
        mine = [n for n in negotiations if name in (n.buyer, n.seller)]
        shares = [own_share(n, "buyer" if n.buyer == name else "seller") for n in mine]
        rated = sum(1 for g in games if name in (g[0], g[1]))
        row: dict[str, Any] = {
            "agent": name, "group": group[name], "negotiations": len(mine), "rated_deals": rated,
            "seats": sorted({"buyer" if n.buyer == name else "seller" for n in mine}),
            "agreement": summarise(n.metrics.get("agreed") for n in mine),
            "surplus_share": summarise(shares),
            "rating": None, "rating_low": None, "rating_high": None,
        }
        if name in fitted:
            theta, se = fitted[name]
            row.update(rating=1500 + ELO_SCALE * theta,
                       rating_low=1500 + ELO_SCALE * (theta - 1.96 * se),
                       rating_high=1500 + ELO_SCALE * (theta + 1.96 * se))
        rows.append(row)
    rows.sort(key=lambda r: (r["rating"] is None, -(r["rating"] or 0), r["agent"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows
