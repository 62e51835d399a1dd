"""`haggle export`: one row per stored negotiation, as JSON lines or CSV.

    haggle export --db haggle.db --format csv > negotiations.csv
    haggle export --tournament 'agreemate/*' --format jsonl -o agreemate.jsonl

Columns: tournament, ids, agents, scenario (id, title, listing price, targets, reservations),
outcome, deal price, error, and every metric (undefined: null in JSON, empty in CSV).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="stored negotiations as JSON lines or CSV",
                       description="Write one row per negotiation: scenario id, agents, outcome, "
                                   "deal price and every metric.")
    p.add_argument("--db", metavar="PATH", help="the database (default [store] path)")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("--tournament", action="append", metavar="NAME",
                   help="only this tournament (repeatable; shell patterns work); default: all")
    p.add_argument("--output", "-o", metavar="FILE", help="write here (default: stdout)")
    p.set_defaults(func=run)


async def _export(args: argparse.Namespace) -> int:
    from bot.commands._common import resolve_config
    from bot.report import load_report_data, write_export
    from bot.store import Store

    cfg = resolve_config(args)
    db = args.db or cfg.resolve_path(cfg.store.path)
    async with await Store.open(db, create=False) as store:
        data = await load_report_data(store, args.tournament)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as fh:
            count = write_export(data.negotiations, fh, args.format)
        print(f"wrote {count} negotiations to {args.output}", file=sys.stderr)
    else:
        write_export(data.negotiations, sys.stdout, args.format)
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_export(args))
    except BrokenPipeError:
        # The reader stopped early (`| head`): not an error. Point stdout at devnull so the
        # interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
