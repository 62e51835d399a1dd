"""`haggle report`: metrics per pairing and per agent, comparisons, a leaderboard, charts.

    haggle report --db haggle.db                                 # every tournament, terminal tables
    haggle report --tournament 'agreemate/*' --format markdown > agreemate.md
    haggle report --format json --plot charts/
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="metrics, comparisons, leaderboard and charts from the database",
        description="Summarise stored negotiations: every metric per pairing and per agent "
                    "(mean, median, n, 95% interval), CoT/personality/scale comparisons, a "
                    "Bradley-Terry leaderboard; optionally PNG charts.")
    p.add_argument("--db", metavar="PATH", help="the database (default [store] path)")
    p.add_argument("--tournament", action="append", metavar="NAME",
                   help="only this tournament (repeatable; shell patterns such as 'agreemate/*' "
                        "work); default: all")
    p.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    p.add_argument("--plot", metavar="DIR", help="also write PNG charts into DIR")
    p.add_argument("--output", "-o", metavar="FILE", help="write the report here (default: stdout)")
    p.set_defaults(func=run)


async def _report(args: argparse.Namespace) -> int:
    from bot.commands._common import resolve_config
    from bot.report import build_report, load_report_data, render, write_plots
    from bot.store import Store
    from bot.tournament import tournament_config

    cfg = resolve_config(args)
    db = args.db or cfg.resolve_path(cfg.store.path)
    async with await Store.open(db, create=False) as store:
        data = await load_report_data(store, args.tournament, with_turns=bool(args.plot))
    report = build_report(data, fallback_flag=tournament_config(cfg).fallback_flag)
    text = render(report, args.format)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    if args.plot:
        for path in write_plots(data, report, args.plot):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_report(args))
    except BrokenPipeError:
        # The reader stopped early (`| head`): not an error. Point stdout at devnull so the
        # interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
