"""The report as tables (terminal text and Markdown) and JSON: ``haggle report --format``."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.negotiation.personality import personality_rank
from bot.report.compare import COMPARE_KEYS
from bot.report.paper import PAPER_LABELS, PAPER_METRICS

OVERVIEW_KEYS = ("agreed", "fairness", "bias", "aggressiveness", "dialogue_length",
                 "buyer_surplus_share")


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


def fmt_fallback(fallback: Mapping[str, Any] | None) -> str:
    """An agent's share of fallback turns, "FLAGGED" when it passes the report's threshold."""
    if not fallback or fallback.get("share") is None:
        return "-"
    text = f"{100 * fallback['share']:.0f}%"
    return f"{text} FLAGGED" if fallback.get("flagged") else text


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

    flag = report.get("fallback_flag")
    flagged = [a for a in report["agents"] if a.get("fallback", {}).get("flagged")]
    if flagged:
        tables.append(Table(
            "WARNING: results made of fallback play",
            ["agent", "seat", "negotiations", "fallback turns", "of its turns", "share"],
            [[a["agent"], a["seat"], str(a["n"]), str(a["fallback"]["fallback_turns"]),
              str(a["fallback"]["turns"]), fmt_fallback(a["fallback"])] for a in flagged],
            f"More than {100 * flag:.0f}% of these agents' turns were rule-based fallback "
            "moves (their model failed or answered unusably): their results below are largely "
            "not their model's. A dead model's negotiations are stored as errors; rerun them "
            "with `haggle tournament ... --retry-errors` once it answers. The threshold is "
            "fallback_flag in [tournament]."))

    board = report["leaderboard"]
    groups = {r["group"] for r in board if r["rating"] is not None}
    tables.append(Table(
        "Leaderboard",
        ["#", "agent", "seats", "rating [95% CI]", "rated deals", "negotiations", "agreement",
         "surplus share", "fallback"] + (["group"] if len(groups) > 1 else []),
        [[str(r["rank"]), r["agent"], "+".join(r["seats"]),
          "-" if r["rating"] is None else
          f"{r['rating']:.0f} [{r['rating_low']:.0f}, {r['rating_high']:.0f}]",
          str(r["rated_deals"]), str(r["negotiations"]), fmt_pct(r["agreement"]),
          fmt(r["surplus_share"]["mean"]), fmt_fallback(r.get("fallback"))]
         + ([str(r["group"]) if r["rating"] is not None else "-"] if len(groups) > 1 else [])
         for r in board],
        "Bradley-Terry over deals: the buyer scores its surplus share, the seller the rest; Elo "
        "scale, 1500 = average. Surplus share: the agent's share of the zone of agreement "
        "(reservation prices) in its own seat, mean over deals. Fallback: the share of the "
        "agent's turns that were rule-based fallback moves"
        + (f" (FLAGGED above {100 * flag:.0f}%)" if flag is not None else "") + "."
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

    tables += paper_tables(report.get("paper", {}))

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
        fallback = a.get("fallback")
        share = "" if not fallback or fallback["share"] is None else \
            f"; fallback {fmt_fallback(fallback)} of its turns"
        tables.append(_metric_table(
            f"Agent {a['agent']} as {a['seat']} ({a['n']} negotiations{share})",
            a["metrics"], keys + ["surplus_share"]))
    for p in report["pairings"]:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(p["outcomes"].items()))
        tables.append(_metric_table(f"Pairing {p['label']} [{p['tournament']}]", p["metrics"], keys,
                                    f"{p['n']} negotiations: {outcomes}"))
    return tables


def paper_tables(paper: Mapping[str, Any]) -> list[Table]:
    """The paper's comparisons (bot/report/paper.py) as tables (none when nothing varies)."""
    tables = []
    note = paper.get("note", "")

    def cell(key: str, summary: Mapping[str, Any]) -> str:
        return fmt_pct(summary) if key == "agreed" else fmt(summary["mean"])

    def macro(key: str, summary: Mapping[str, Any]) -> str:
        if summary["mean"] is None:
            return "-"
        return f"{100 * summary['mean']:.0f}%" if key == "agreed" else fmt(summary["mean"], 4)

    cot = paper.get("cot", [])
    if cot:
        headers = ["metric"] + [f"{c['source']} {'with' if c['cot'] else 'without'} CoT"
                                for c in cot]
        rows = [["pairings"] + [str(c["pairings"]) for c in cot],
                ["negotiations"] + [str(c["negotiations"]) for c in cot]]
        rows += [[PAPER_LABELS[k]] + [macro(k, c["metrics"][k]) for c in cot]
                 for k in PAPER_METRICS]
        tables.append(Table(
            "Paper: combinations with vs without chain of thought", headers, rows,
            "The scale x CoT pairings: baseline agents with no personality prompt (AgreeMate) or "
            "the baseline personality (experiments), at the scales run both ways. 'with CoT' = "
            "at least one agent reasons. Means of the pairings' means, as the paper averaged "
            "(on the published runs this gives its aggressiveness, bias, dialogue length and "
            "fairness; its concession rate and relative efficiency used other formulas). " + note))

    scale = paper.get("scale", [])
    if scale:
        keys = ("agreed", "fairness", "bias", "aggressiveness", "dialogue_length",
                "concession_rate", "probing_ratio", "relative_efficiency")
        tables.append(Table(
            "Paper: model scale and CoT, by the agent in each seat",
            ["source", "seat", "scale", "CoT", "pairings", "n"] + [PAPER_LABELS[k] for k in keys],
            [[r["source"], r["seat"], fmt(r["scale"]), fmt(r["cot"]), str(r["pairings"]),
              str(r["negotiations"])] + [macro(k, r["metrics"][k]) for k in keys]
             for r in scale],
            "The scale x CoT pairings in which an agent of that scale and CoT setting held the "
            "seat, whoever sat opposite; means of the pairings' means. " + note))

    personality = paper.get("personality", [])
    if personality:
        sellers = sorted({p for g in personality for p in g["sellers"]}, key=personality_rank)
        for key, title, shown in (
                ("agreed", "agreement rate", lambda s: fmt_pct(s).split(" [")[0]),
                ("fairness", "fairness (deals)", lambda s: fmt(s["mean"])),
                ("bias", "bias (deals; +1 = buyer's target)", lambda s: fmt(s["mean"]))):
            rows = []
            for g in personality:
                cells = {(c["buyer"], c["seller"]): c for c in g["cells"]}
                label = f"{g['source']} {g['scale'] or ''}{' CoT' if g['cot'] else ''}".strip()
                for buyer in g["buyers"]:
                    row = [label, buyer]
                    for seller in sellers:
                        c = cells.get((buyer, seller))
                        if c is None:
                            row.append("")
                        elif c["metrics"][key]["n"] == 0:
                            row.append("no deals")
                        else:
                            row.append(f"{shown(c['metrics'][key])} (n={c['metrics'][key]['n']})")
                    rows.append(row)
            tables.append(Table(
                f"Paper: personality pairings, {title}",
                ["source", "buyer \\ seller"] + sellers, rows,
                "Rows: the buyer's personality; columns: the seller's ('default' = no personality "
                "prompt). n counts negotiations for agreement, deals otherwise. " + note))

    roles = paper.get("roles", [])
    if roles:
        keys = ("agreed", "fairness", "bias", "aggressiveness", "dialogue_length",
                "probing_ratio", "buyer_surplus_share")
        tables.append(Table(
            "Paper: fine-tuned vs base vs generalist",
            ["source", "CoT", "buyer", "seller", "n"]
            + [PAPER_LABELS.get(k, "buyer surplus") for k in keys],
            [[r["source"], fmt(r["cot"]), f"{r['buyer_family']} {r['buyer_scale'] or ''}".strip(),
              f"{r['seller_family']} {r['seller_scale'] or ''}".strip(), str(r["n"])]
             + [cell(k, r["metrics"][k]) for k in keys] for r in roles],
            "Role models against each other and against the baseline of the other seat, beside "
            "baseline vs baseline at the same scale. " + note))
    return tables


def render_text(tables: Sequence[Table]) -> str:
    out = []
    for t in tables:
        widths = [max([len(h)] + [len(r[i]) for r in t.rows]) for i, h in enumerate(t.headers)]
        line = "  ".join("-" * w for w in widths)
        out += [t.title, "=" * len(t.title),
                "  ".join(h.ljust(w) for h, w in zip(t.headers, widths, strict=False)).rstrip(), line]
        for r in t.rows:
            out.append("  ".join(c.rjust(w) if _numeric(c) else c.ljust(w)
                                 for c, w in zip(r, widths, strict=False)).rstrip())
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
