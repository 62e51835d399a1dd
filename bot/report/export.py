"""Flat export of stored negotiations: one row each, as CSV or JSON lines (`haggle export`)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from bot.report.stats import metric_keys

if TYPE_CHECKING:
    from bot.store import NegotiationRow

EXPORT_COLUMNS = ("tournament", "negotiation_id", "pairing", "buyer", "seller", "scenario_id",
                  "repetition", "title", "category", "listing_price", "buyer_target",
                  "seller_target", "buyer_reservation", "seller_reservation", "first_mover",
                  "outcome", "deal_price", "error")


def export_rows(negotiations: Sequence[NegotiationRow]) -> tuple[list[str], list[dict[str, Any]]]:
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


def write_export(negotiations: Sequence[NegotiationRow], out: TextIO, fmt_name: str) -> int:
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
