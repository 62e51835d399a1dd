"""Reports over the database: per pairing and per agent metrics, comparisons, a leaderboard,
tables (terminal, Markdown), JSON, CSV/JSON-lines export and PNG charts.

Everything is computed from stored negotiations (``bot.store``), so our tournaments and the
imported AgreeMate reference runs are reported the same way, side by side.

- Every metric (``bot.negotiation.metrics.METRIC_KEYS``) is summarised with mean, median, n
  and a 95% Student-t interval, per pairing (one tournament's buyer x seller) and per agent in
  a seat (bias is signed from the buyer's side in every row: +1 = the buyer got its target).
  Per-agent rows add ``surplus_share``: the share of the zone of agreement the agent took in
  its own seat.
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

import csv
import fnmatch
import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, TextIO

from bot.errors import DataError
from bot.negotiation.metrics import METRIC_KEYS, aggregate

# The paper's metrics plus agreement and surplus: what comparison tables show.
COMPARE_KEYS = ("agreed", "surplus_share", "fairness", "bias", "aggressiveness", "dialogue_length",
                "concession_rate", "probing_ratio", "relative_efficiency")
OVERVIEW_KEYS = ("agreed", "fairness", "bias", "aggressiveness", "dialogue_length",
                 "buyer_surplus_share")
ELO_SCALE = 400.0 / math.log(10.0)
PRIOR_PRECISION = 0.1  # Gaussian prior on strengths (sd ~3.2 logits, ~550 Elo): weak
SEATS = ("buyer", "seller")


# --------------------------------------------------------------------------- loading


@dataclass
class ReportData:
    tournaments: list[Any]             # bot.store.TournamentRow
    negotiations: list[Any]            # bot.store.NegotiationRow
    turns: dict[int, list[Any]] | None  # negotiation id -> bot.store.TurnRow (for charts)

    @property
    def agents(self) -> dict[str, dict[str, Any]]:
        """Agent name -> metadata (kind, family, cot, personality, scale, ...), from the
        tournaments' snapshots (a later tournament's entry wins)."""
        out: dict[str, dict[str, Any]] = {}
        for t in self.tournaments:
            out.update(t.agents)
        return out


def select_tournaments(all_tournaments: Sequence[Any], patterns: Sequence[str] | None) -> list[Any]:
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


async def load_report_data(store: Any, patterns: Sequence[str] | None = None, *,
                           with_turns: bool = False) -> ReportData:
    tournaments = select_tournaments(await store.tournaments(), patterns)
    if not tournaments:
        raise DataError(f"{store.path} holds no tournaments yet: run `haggle tournament` or "
                        f"`haggle import-agreemate` first")
    ids = [t.id for t in tournaments]
    negotiations = await store.negotiations(ids)
    turns = await store.turns(ids) if with_turns else None
    return ReportData(tournaments, negotiations, turns)


# --------------------------------------------------------------------------- summaries


def metric_keys(negotiations: Iterable[Any]) -> list[str]:
    """METRIC_KEYS first, then any other metric a stored negotiation carries."""
    keys = list(METRIC_KEYS)
    for n in negotiations:
        keys += [k for k in n.metrics if k not in keys]
    return keys


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion: stays inside [0, 1] and is not degenerate at
    0% or 100%, unlike a t-interval of 0/1 values (30 deals of 30 -> [0.886, 1])."""
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def summarise(values: Iterable[Any]) -> dict[str, Any]:
    """``aggregate`` as a dict; yes/no metrics (agreed, in_zone) get a Wilson interval."""
    values = [v for v in values if v is not None]
    summary = aggregate(values)
    if values and all(isinstance(v, bool) for v in values):
        low, high = wilson_interval(sum(values), len(values))
        summary = replace(summary, ci_low=low, ci_high=high)
    return asdict(summary)


def _own_share(n: Any, seat: str) -> float | None:
    return n.metrics.get(f"{seat}_surplus_share")


def _tournament_tag(tournament: str, buyer: str, seller: str) -> str:
    """A short tag telling apart tournaments of the same pairing: an imported file name like
    ``agreemate/A+B_updated`` becomes ``agreemate updated``."""
    tag = tournament.replace(f"{buyer}+{seller}", "")
    tag = re.sub(r"[/_]+", " ", tag).strip()
    return tag or tournament


def pairing_groups(negotiations: Sequence[Any]) -> dict[tuple[str, str, str], list[Any]]:
    groups: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for n in negotiations:
        groups[(n.tournament, n.buyer, n.seller)].append(n)
    return dict(groups)


def pairing_labels(keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    """'buyer vs seller', with a tournament tag only where the pairing ran in several."""
    keys = list(keys)
    count = Counter((b, s) for _, b, s in keys)
    return {(t, b, s): f"{b} vs {s}"
            + (f" ({_tournament_tag(t, b, s)})" if count[(b, s)] > 1 else "")
            for t, b, s in keys}


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

    by_agent: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for n in negotiations:
        by_agent[(n.buyer, "buyer")].append(n)
        by_agent[(n.seller, "seller")].append(n)
    agents = []
    for (name, seat), rows in sorted(by_agent.items()):
        metrics = {k: summarise(r.metrics.get(k) for r in rows) for k in keys}
        metrics["surplus_share"] = summarise(_own_share(r, seat) for r in rows)
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
        "paper": _paper(negotiations, meta),
        "agents": agents,
        "pairings": pairings,
    }


# --------------------------------------------------------------------------- the paper's tables
# AgreeMate's comparisons (CoT, scale, personality pairings, role models), experiments beside
# the imported published runs; they live with the experiment grid in bot/experiment.py.


def _paper(negotiations: Sequence[Any], meta: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    from bot.experiment import paper_comparisons

    return paper_comparisons(negotiations, meta)


def _paper_tables(paper: Mapping[str, Any]) -> list["Table"]:
    from bot.experiment import paper_tables

    return paper_tables(paper) if paper else []


# --------------------------------------------------------------------------- comparisons

_PERSONALITY_ORDER = {"aggressive": 0, "fair": 1, "passive": 2, "default": 3}
_FIELDS = ("source", "family", "cot", "personality", "scale")


def _scale_value(label: Any) -> float:
    match = re.match(r"^(\d+(?:\.\d+)?)([KMB])$", str(label or ""))
    if not match:
        return math.inf
    return float(match.group(1)) * {"K": 1e3, "M": 1e6, "B": 1e9}[match.group(2)]


def _order(dimension: str, value: Any) -> Any:
    if dimension == "scale":
        return _scale_value(value)
    if dimension == "personality":
        return _PERSONALITY_ORDER.get(value, 9)
    return (str(value))


def comparisons(negotiations: Sequence[Any],
                meta: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """For each of CoT, personality and scale: agents in the same seat whose metadata differ
    only there, each value's negotiations summarised on COMPARE_KEYS."""
    by_agent_seat: dict[tuple[str, str], list[Any]] = defaultdict(list)
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
                        (_own_share(n, seat) if k == "surplus_share" else n.metrics.get(k))
                        for n in negs) for k in COMPARE_KEYS}
                    rows.append({"value": value, "agents": names, "n": len(negs),
                                 "metrics": metrics})
                out.append({"dimension": dimension, "seat": seat, "fixed": dict(fixed),
                            "rows": rows})
    return out


# --------------------------------------------------------------------------- leaderboard


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
    group = _components(((players[i], players[j]) for i, j in zip(a, b)), players)
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


def leaderboard(negotiations: Sequence[Any]) -> list[dict[str, Any]]:
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
        shares = [_own_share(n, "buyer" if n.buyer == name else "seller") for n in mine]
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


# --------------------------------------------------------------------------- tables


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.1f}" if abs(value) >= 1000 else f"{value:.{digits}f}"
    return str(value)


def fmt_ci(s: Mapping[str, Any]) -> str:
    if s.get("ci_low") is None:
        return "-"
    return f"[{fmt(s['ci_low'])}, {fmt(s['ci_high'])}]"


def fmt_pct(s: Mapping[str, Any]) -> str:
    if s.get("mean") is None:
        return "-"
    text = f"{100 * s['mean']:.0f}%"
    if s.get("ci_low") is not None:
        text += f" [{100 * max(0.0, s['ci_low']):.0f}, {100 * min(1.0, s['ci_high']):.0f}]"
    return text


def _metric_table(title: str, metrics: Mapping[str, Mapping[str, Any]], keys: Sequence[str],
                  note: str = "") -> Table:
    rows = [[k, fmt(s["mean"]), fmt(s["median"]), str(s["n"]), fmt_ci(s)]
            for k in keys if (s := metrics.get(k)) is not None]
    return Table(title, ["metric", "mean", "median", "n", "95% CI"], rows, note)


def report_tables(report: Mapping[str, Any]) -> list[Table]:
    """The report as tables, in reading order."""
    tables = [Table("Tournaments", ["tournament", "kind", "stored", "planned", "seed", "finished"],
                    [[t["name"], t["kind"], str(t["stored"]), str(t["planned"]), fmt(t["seed"]),
                      t["finished_at"] or "no"] for t in report["tournaments"]])]

    board = report["leaderboard"]
    groups = {r["group"] for r in board if r["rating"] is not None}
    tables.append(Table(
        "Leaderboard",
        ["#", "agent", "seats", "rating [95% CI]", "rated deals", "negotiations", "agreement",
         "surplus share"] + (["group"] if len(groups) > 1 else []),
        [[str(r["rank"]), r["agent"], "+".join(r["seats"]),
          "-" if r["rating"] is None else
          f"{r['rating']:.0f} [{r['rating_low']:.0f}, {r['rating_high']:.0f}]",
          str(r["rated_deals"]), str(r["negotiations"]), fmt_pct(r["agreement"]),
          fmt(r["surplus_share"]["mean"])]
         + ([str(r["group"]) if r["rating"] is not None else "-"] if len(groups) > 1 else [])
         for r in board],
        "Bradley-Terry over deals: the buyer scores its surplus share, the seller the rest; Elo "
        "scale, 1500 = average. Surplus share: the agent's share of the zone of agreement "
        "(reservation prices) in its own seat, mean over deals."
        + (" Ratings compare only within a group (agents connected by games)."
           if len(groups) > 1 else "")))

    tables.append(Table(
        "Pairings",
        ["pairing", "n", "agreement", "fairness", "bias", "aggressiveness", "length",
         "buyer surplus", "errors"],
        [[p["label"], str(p["n"]), fmt_pct(p["metrics"]["agreed"])]
         + [fmt(p["metrics"][k]["mean"]) for k in OVERVIEW_KEYS[1:]]
         + [str(p["outcomes"].get("error", 0))] for p in report["pairings"]],
        "Means; agreement with its 95% interval. bias: +1 = the buyer got its target, -1 = the "
        "seller did."))

    tables += _paper_tables(report.get("paper", {}))

    for c in report["comparisons"]:
        fixed = ", ".join(f"{k}={v}" for k, v in c["fixed"].items() if v is not None)
        tables.append(Table(
            f"{c['dimension']} comparison, {c['seat']} seat ({fixed})",
            [c["dimension"], "agents", "n"] + list(COMPARE_KEYS),
            [[fmt(r["value"]), ", ".join(r["agents"]), str(r["n"])]
             + [fmt_pct(r["metrics"][k]) if k == "agreed" else fmt(r["metrics"][k]["mean"])
                for k in COMPARE_KEYS] for r in c["rows"]],
            f"Means over every negotiation of these agents in the {c['seat']} seat."))

    keys = list(report["metric_keys"])
    for a in report["agents"]:
        tables.append(_metric_table(f"Agent {a['agent']} as {a['seat']} ({a['n']} negotiations)",
                                    a["metrics"], keys + ["surplus_share"]))
    for p in report["pairings"]:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(p["outcomes"].items()))
        tables.append(_metric_table(f"Pairing {p['label']} [{p['tournament']}]", p["metrics"], keys,
                                    f"{p['n']} negotiations: {outcomes}"))
    return tables


def render_text(tables: Sequence[Table]) -> str:
    out = []
    for t in tables:
        widths = [max([len(h)] + [len(r[i]) for r in t.rows]) for i, h in enumerate(t.headers)]
        line = "  ".join("-" * w for w in widths)
        out += [t.title, "=" * len(t.title),
                "  ".join(h.ljust(w) for h, w in zip(t.headers, widths)).rstrip(), line]
        for r in t.rows:
            out.append("  ".join(c.rjust(w) if _numeric(c) else c.ljust(w)
                                 for c, w in zip(r, widths)).rstrip())
        if t.note:
            out.append(t.note)
        out.append("")
    return "\n".join(out)


def _numeric(cell: str) -> bool:
    return bool(re.match(r"^[-+]?\d", cell))


def render_markdown(tables: Sequence[Table]) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    out = ["# haggle report", ""]
    for t in tables:
        out += [f"## {esc(t.title)}", "", "| " + " | ".join(map(esc, t.headers)) + " |",
                "|" + "|".join("---:" if i else "---" for i in range(len(t.headers))) + "|"]
        out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in t.rows]
        if t.note:
            out += ["", f"*{esc(t.note)}*"]
        out.append("")
    return "\n".join(out)


def render(report: Mapping[str, Any], fmt_name: str) -> str:
    if fmt_name == "json":
        return json.dumps(report, indent=1, allow_nan=False)
    tables = report_tables(report)
    return render_markdown(tables) if fmt_name == "markdown" else render_text(tables)


# --------------------------------------------------------------------------- export

EXPORT_COLUMNS = ("tournament", "negotiation_id", "pairing", "buyer", "seller", "scenario_id",
                  "repetition", "title", "category", "listing_price", "buyer_target",
                  "seller_target", "buyer_reservation", "seller_reservation", "first_mover",
                  "outcome", "deal_price", "error")


def export_rows(negotiations: Sequence[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """One flat row per negotiation: identity, scenario, outcome, deal price, every metric."""
    keys = metric_keys(negotiations)
    rows = []
    for n in negotiations:
        sc = n.scenario
        row = {"tournament": n.tournament, "negotiation_id": n.id, "pairing": n.pairing,
               "buyer": n.buyer, "seller": n.seller, "scenario_id": n.scenario_id,
               "repetition": n.repetition, "title": sc.get("title"), "category": sc.get("category"),
               "listing_price": sc.get("listing_price"), "buyer_target": sc.get("buyer_target"),
               "seller_target": sc.get("seller_target"),
               "buyer_reservation": sc.get("buyer_reservation"),
               "seller_reservation": sc.get("seller_reservation"), "first_mover": n.first_mover,
               "outcome": n.outcome, "deal_price": n.deal_price, "error": n.error}
        row.update({k: n.metrics.get(k) for k in keys})
        rows.append(row)
    return list(EXPORT_COLUMNS) + keys, rows


def write_export(negotiations: Sequence[Any], out: TextIO, fmt_name: str) -> int:
    """Write ``jsonl`` (one JSON object a line) or ``csv`` (undefined = empty cell, booleans
    true/false); returns the number of rows."""
    columns, rows = export_rows(negotiations)
    if fmt_name == "jsonl":
        for row in rows:
            out.write(json.dumps(row, allow_nan=False, ensure_ascii=False) + "\n")
    elif fmt_name == "csv":
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("true" if v else "false") if isinstance(v, bool)
                             else ("" if v is None else v) for k, v in row.items()})
    else:
        raise ValueError(f"unknown export format {fmt_name!r}")
    return len(rows)


# --------------------------------------------------------------------------- charts

SOURCE_COLOURS = {"tournament": "#4c72b0", "reference": "#a0a0a0"}
BUYER_COLOUR, SELLER_COLOUR = "#1f77b4", "#d95f02"
# Acts stacked in the order a negotiation tells its story: talk, prices, closing, noise.
ACT_COLOURS = {
    "intro": "#c6dbef", "inquire": "#6baed6", "inform": "#2171b5",
    "init-price": "#fdd0a2", "offer": "#fdae6b", "counter-price": "#fd8d3c",
    "vague-price": "#e6550d", "insist": "#a63603",
    "agree": "#a1d99b", "accept": "#31a354",
    "disagree": "#fcbba1", "reject": "#ef3b2c", "quit": "#99000d",
    "unknown": "#bdbdbd",
}
PANELS_PER_PAGE = 12


def write_plots(data: ReportData, report: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """PNG charts into ``out_dir``; returns the files written.

    agreement_by_pairing.png, fairness_bias.png, acts_by_agent.png, leaderboard.png and
    price_trajectories[_N].png (12 pairings a page). Charts that need turns are skipped when
    ``data`` was loaded without them.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with plt.rc_context({"font.size": 9, "axes.titlesize": 11, "axes.titleweight": "bold",
                         "axes.spines.top": False, "axes.spines.right": False}):
        written = [_plot_agreement(plt, report, out / "agreement_by_pairing.png"),
                   _plot_fairness_bias(plt, data, report, out / "fairness_bias.png"),
                   _plot_acts(plt, data, out / "acts_by_agent.png"),
                   _plot_leaderboard(plt, report, out / "leaderboard.png")]
        written += _plot_trajectories(plt, data, report, out)
        written += _paper_plots(plt, report, out)
    return [p for p in written if p is not None]


def _paper_plots(plt: Any, report: Mapping[str, Any], out: Path) -> list[Path]:
    """paper_cot.png, paper_personality.png: the paper's comparisons (bot/experiment.py)."""
    from bot.experiment import write_paper_plots

    return write_paper_plots(plt, report.get("paper", {}), out)


def _bar_height(n: int) -> float:
    return max(2.2, 1.0 + 0.27 * n)


def _rows_axis(ax: Any, labels: Sequence[str]) -> None:
    """Horizontal-bar rows: one tick per label, no empty margin above or below."""
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(-0.6, len(labels) - 0.4)


def _plot_agreement(plt: Any, report: Mapping[str, Any], path: Path) -> Path:
    # Highest agreement on top (barh draws bottom-up, hence the reversed sort).
    pairings = sorted(report["pairings"],
                      key=lambda p: (-(p["metrics"]["agreed"]["mean"] or 0.0), p["label"]))[::-1]
    fig, ax = plt.subplots(figsize=(9, _bar_height(len(pairings))))
    ys = range(len(pairings))
    rates = [p["metrics"]["agreed"]["mean"] or 0.0 for p in pairings]
    lows = [max(0.0, r if s["ci_low"] is None else s["ci_low"])
            for p, r in zip(pairings, rates) for s in [p["metrics"]["agreed"]]]
    highs = [min(1.0, r if s["ci_high"] is None else s["ci_high"])
             for p, r in zip(pairings, rates) for s in [p["metrics"]["agreed"]]]
    ax.barh(ys, rates, color=[SOURCE_COLOURS.get(p["kind"], "#4c72b0") for p in pairings],
            height=0.7)
    ax.errorbar(rates, ys, xerr=[[r - lo for r, lo in zip(rates, lows)],
                                 [hi - r for r, hi in zip(rates, highs)]],
                fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
    for y, p, r in zip(ys, pairings, rates):
        ax.text(1.02, y, f"{100 * r:.0f}%  n={p['n']}", va="center", fontsize=8,
                transform=ax.get_yaxis_transform())
    _rows_axis(ax, [p["label"] for p in pairings])
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:.0f}%"))
    ax.set_xlabel("negotiations that ended in a deal (whiskers: 95% interval)")
    ax.set_title("Agreement rate by pairing (buyer vs seller)", loc="left")
    kinds = {p["kind"] for p in pairings}
    if len(kinds) > 1:
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color=SOURCE_COLOURS["tournament"], label="our tournaments"),
                           Patch(color=SOURCE_COLOURS["reference"],
                                 label="AgreeMate published runs")],
                  loc="upper center", ncol=2, fontsize=8, frameon=False,
                  bbox_to_anchor=(0.5, -0.6 / _bar_height(len(pairings)) - 0.02))
    return _save(plt, fig, path)


# x ranges of the distribution panels: the formulas allow any value for deals far outside the
# targets, and one such deal would squash every box; values beyond are drawn on the edge.
_FAIRNESS_RANGE, _BIAS_RANGE = (-1.5, 1.05), (-1.6, 1.6)


def _plot_fairness_bias(plt: Any, data: ReportData, report: Mapping[str, Any], path: Path) -> Path:
    import matplotlib
    import numpy as np

    groups = pairing_groups(data.negotiations)

    def median_bias(p: Mapping[str, Any]) -> float:
        value = p["metrics"]["bias"]["median"]
        return -math.inf if value is None else value

    # Most buyer-favourable (bias near +1) on top.
    pairings = sorted(report["pairings"], key=lambda p: (median_bias(p), p["label"]))
    fig, axes = plt.subplots(1, 2, figsize=(12.5, _bar_height(len(pairings)) + 0.3), sharey=True)
    ys = list(range(len(pairings)))
    panels = (("fairness", "Fairness of deals", 1.0, _FAIRNESS_RANGE,
               "fairness: 1 = deal halfway between\nthe two targets; lower = lopsided"),
              ("bias", "Who the deal favours (signed bias)", 0.0, _BIAS_RANGE,
               "bias: +1 = buyer got its target,\n-1 = seller got its target"))
    for ax, (key, title, ref, (lo, hi), xlabel) in zip(axes, panels):
        values = [[n.metrics[key] for n in groups[(p["tournament"], p["buyer"], p["seller"])]
                   if n.metrics.get(key) is not None] for p in pairings]
        filled = [(y, vs, p) for y, vs, p in zip(ys, values, pairings) if vs]
        if filled:
            box = ax.boxplot([vs for _, vs, _ in filled], positions=[y for y, _, _ in filled],
                             widths=0.6, patch_artist=True, showfliers=False, whis=(5, 95),
                             medianprops={"color": "black"}, **_horizontal(matplotlib))
            for patch, (_, _, p) in zip(box["boxes"], filled):
                patch.set_facecolor(SOURCE_COLOURS.get(p["kind"], "#4c72b0"))
                patch.set_alpha(0.55)
            xs = np.array([v for _, vs, _ in filled for v in vs])
            yv = np.array([y for y, vs, _ in filled for _ in vs], dtype=float)
            inside = (xs >= lo) & (xs <= hi)
            ax.scatter(xs[inside], yv[inside], s=6, color="black", alpha=0.35, zorder=3)
            for edge, mask, marker in ((lo, xs < lo, "<"), (hi, xs > hi, ">")):
                if mask.any():
                    ax.scatter(np.full(mask.sum(), edge), yv[mask], s=14, marker=marker,
                               color="#b2182b", alpha=0.7, zorder=3, clip_on=False)
        for y, vs in zip(ys, values):
            if not vs:
                ax.text(0.5, y, "no deals", va="center", ha="center", fontsize=7, color="grey",
                        transform=ax.get_yaxis_transform())
        ax.axvline(ref, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xlim(lo, hi)
        ax.set_title(title, loc="left")
        ax.set_xlabel(xlabel)
    _rows_axis(axes[0], [p["label"] for p in pairings])
    fig.suptitle("Each pairing's deals: box = middle half, whiskers = 5-95%, dots = deals, "
                 "red arrows = beyond the axis", x=0.01, ha="left", fontsize=9)
    return _save(plt, fig, path, reserve_top=0.3 / fig.get_figheight())


def _horizontal(matplotlib: Any) -> dict[str, Any]:
    """boxplot's keyword for horizontal boxes: ``orientation`` since 3.10, ``vert`` before."""
    major, minor = (int(x) for x in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


def _plot_acts(plt: Any, data: ReportData, path: Path) -> Path | None:
    if data.turns is None:
        return None
    by_id = {n.id: n for n in data.negotiations}
    counts: dict[str, Counter] = defaultdict(Counter)
    for nid, turns in data.turns.items():
        n = by_id.get(nid)
        if n is None:
            continue
        for t in turns:
            counts[f"{n.buyer if t.role == 'buyer' else n.seller} ({t.role})"][t.act] += 1
    if not counts:
        return None
    rows = sorted(counts)[::-1]
    acts = [a for a in ACT_COLOURS if any(c[a] for c in counts.values())]
    acts += sorted({a for c in counts.values() for a in c} - set(acts))
    fig, ax = plt.subplots(figsize=(11, _bar_height(len(rows))))
    left = [0.0] * len(rows)
    for act in acts:
        shares = [counts[r][act] / sum(counts[r].values()) for r in rows]
        colour = ACT_COLOURS.get(act, "#7f7f7f")
        ax.barh(range(len(rows)), shares, left=left, color=colour, label=act, height=0.75)
        dark = act in ("inform", "vague-price", "insist", "accept", "reject", "quit")
        for y, (x0, s) in enumerate(zip(left, shares)):
            if s >= 0.08:
                ax.text(x0 + s / 2, y, f"{100 * s:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
        left = [x + s for x, s in zip(left, shares)]
    _rows_axis(ax, [f"{r}  n={sum(counts[r].values())}" for r in rows])
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:.0f}%"))
    ax.set_xlabel("share of the agent's turns (numbers: % where >= 8%; n = turns)")
    ax.set_title("What each agent does: dialogue acts by agent and seat", loc="left")
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(plt, fig, path)


def _plot_leaderboard(plt: Any, report: Mapping[str, Any], path: Path) -> Path | None:
    rows = [r for r in report["leaderboard"] if r["rating"] is not None][::-1]
    if not rows:
        return None
    groups = sorted({r["group"] for r in rows})
    cmap = plt.get_cmap("tab10")
    colour = {g: cmap(i % 10) for i, g in enumerate(groups)}
    fig, ax = plt.subplots(figsize=(9, _bar_height(len(rows))))
    for y, r in enumerate(rows):
        ax.errorbar([r["rating"]], [y], xerr=[[r["rating"] - r["rating_low"]],
                                             [r["rating_high"] - r["rating"]]],
                    fmt="o", color=colour[r["group"]], ecolor="grey", capsize=2)
        ax.text(1.02, y, f"{r['rating']:.0f}   agreement {fmt_pct(r['agreement']).split(' ')[0]}",
                va="center", fontsize=8, transform=ax.get_yaxis_transform())
    _rows_axis(ax, [r["agent"] for r in rows])
    ax.axvline(1500, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("rating, Elo scale (whiskers: 95% interval); 1500 = average of its group")
    ax.set_title("Leaderboard: who takes the bigger share of the deals", loc="left")
    if len(groups) > 1:
        from matplotlib.lines import Line2D

        fig.legend([Line2D([], [], marker="o", linestyle="", color=colour[g]) for g in groups],
                   [f"group {g}" for g in groups], fontsize=8, frameon=False,
                   loc="lower center", ncol=min(len(groups), 6),
                   title="rated together (ratings compare only within a group)",
                   title_fontsize=8)
        return _save(plt, fig, path, reserve_bottom=0.55 / fig.get_figheight())
    return _save(plt, fig, path)


def _plot_trajectories(plt: Any, data: ReportData, report: Mapping[str, Any],
                       out: Path) -> list[Path]:
    if data.turns is None:
        return []
    import numpy as np
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    pairings = report["pairings"]  # tournament order: related pairings stay on one page
    groups = pairing_groups(data.negotiations)
    pages = [pairings[i:i + PANELS_PER_PAGE] for i in range(0, len(pairings), PANELS_PER_PAGE)]
    written = []
    for page_no, page in enumerate(pages, 1):
        cols = min(3, len(page))
        rows_n = math.ceil(len(page) / cols)
        height = 1.1 + 3.3 * rows_n
        fig, axes = plt.subplots(rows_n, cols, figsize=(4.8 * cols, height), squeeze=False,
                                 sharey=True)
        for ax in axes.flat[len(page):]:
            ax.set_visible(False)
        highs: list[float] = []
        for ax, p in zip(axes.flat, page):
            negs = groups[(p["tournament"], p["buyer"], p["seller"])]
            series: dict[str, list[list[tuple[int, float]]]] = {"buyer": [], "seller": []}
            deals = []
            for n in negs:
                listing = n.scenario["listing_price"]
                for seat in SEATS:
                    pts = [(t.idx + 1, t.price / listing) for t in data.turns.get(n.id, [])
                           if t.role == seat and t.price is not None and t.act != "accept"]
                    if pts:
                        series[seat].append(pts)
                        highs += [y for _, y in pts]
                if n.deal_price is not None:
                    deals.append((n.metrics.get("dialogue_length") or 0, n.deal_price / listing))
            # One collection per seat: a separate line per negotiation takes long to draw.
            alpha = max(0.1, min(0.5, 4.0 / max(1, len(negs))))
            for seat, colour in (("buyer", BUYER_COLOUR), ("seller", SELLER_COLOUR)):
                ax.add_collection(LineCollection(series[seat], colors=colour, alpha=alpha,
                                                 linewidths=0.8))
                by_turn: dict[int, list[float]] = defaultdict(list)
                for pts in series[seat]:
                    for x, y in pts:
                        by_turn[x].append(y)
                xs = sorted(x for x, v in by_turn.items() if len(v) >= 3)
                if xs:
                    ax.plot(xs, [float(np.median(by_turn[x])) for x in xs], color=colour,
                            linewidth=2.2)
            if deals:
                ax.scatter(*zip(*deals), s=9, color="black", alpha=0.5, zorder=3)
            ax.axhline(1.0, color="grey", linestyle=":", linewidth=0.8)
            ax.set_xlim(0.5, max(n.max_turns for n in negs) + 0.5)
            rate = p["metrics"]["agreed"]["mean"] or 0.0
            ax.set_title(f"{_wrap(p['label'], 48)}\n{p['n']} negotiations, "
                         f"{100 * rate:.0f}% deals", fontsize=8.5, loc="left")
            ax.set_xlabel("turn")
        for ax in axes[:, 0]:
            ax.set_ylabel("price / listing price")
        top = float(np.percentile(highs, 99)) if highs else 1.0
        axes.flat[0].set_ylim(0, min(2.0, max(1.1, top + 0.1)))
        handles = [Line2D([], [], color=BUYER_COLOUR, linewidth=2.2),
                   Line2D([], [], color=SELLER_COLOUR, linewidth=2.2),
                   Line2D([], [], marker="o", color="black", linestyle="", markersize=4, alpha=0.6)]
        fig.legend(handles, ["buyer's offers (thin: each negotiation; thick: median)",
                             "seller's offers", "deal price, at the turn it closed"],
                   loc="upper left", bbox_to_anchor=(0.01, 1 - 0.45 / height), ncol=3,
                   fontsize=8, frameon=False)
        suffix = f" (page {page_no} of {len(pages)})" if len(pages) > 1 else ""
        fig.suptitle(f"Price trajectories: offers turn by turn, as a fraction of the listing "
                     f"price{suffix}", x=0.01, y=1 - 0.12 / height, ha="left", fontsize=11,
                     fontweight="bold")
        # A fixed layout in inches: tight_layout on a dozen panels costs seconds.
        fig.subplots_adjust(left=0.75 / (4.8 * cols), right=0.98, bottom=0.5 / height,
                            top=1 - 1.25 / height, wspace=0.08, hspace=0.6)
        name = "price_trajectories.png" if len(pages) == 1 else f"price_trajectories_{page_no}.png"
        written.append(_save(plt, fig, out / name, layout=False))
    return written


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def _save(plt: Any, fig: Any, path: Path, *, layout: bool = True, reserve_top: float = 0.0,
          reserve_bottom: float = 0.0) -> Path:
    if layout:
        fig.tight_layout(rect=(0, reserve_bottom, 1, 1 - reserve_top))
    fig.savefig(path, dpi=110, bbox_inches="tight" if layout else None)
    plt.close(fig)
    return path
