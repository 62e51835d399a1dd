"""`haggle experiment`: the paper's grid (scale x CoT x personality x role models) in one command.

    haggle experiment examples/grid_cpu.toml --dry-run          # the plan: agents, pairings, left
    haggle experiment examples/grid_cpu.toml --db runs/cpu.db --with-agreemate
    haggle report --db runs/cpu.db                               # the paper's tables, side by side

Every pairing is its own tournament, EXPERIMENT/BUYER+SELLER, so rerunning the command
finishes only what is missing, and a model added to the grid adds only its pairings.
"""

from __future__ import annotations

import argparse
import asyncio
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "experiment", help="run an AgreeMate-style grid of agents into one database (resumable)",
        description="Expand a grid file (models x CoT x personality x role models) into named "
                    "agents and one tournament per pairing, and play them into one database. "
                    "Rerun to resume. See examples/grid_cpu.toml and bot/experiment.py.")
    p.add_argument("grid", metavar="GRID.toml", help="the grid file")
    p.add_argument("--db", metavar="PATH",
                   help="the database (default: [store] path of config.toml)")
    p.add_argument("--workers", type=int, metavar="W",
                   help="negotiations run concurrently (default: experiment.workers)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (agents, pairings, tournaments, what is left) and stop")
    p.add_argument("--with-agreemate", action="store_true",
                   help="also import the published AgreeMate runs ([data] agreemate_results) "
                        "into the database when they are not there, for side-by-side tables")
    p.add_argument("--retry-errors", action="store_true",
                   help="run again the negotiations that ended in an agent error")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


async def _experiment(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bot.agreemate import import_reference_runs
    from bot.commands._common import resolve_config
    from bot.errors import ConfigError
    from bot.experiment import describe, plan_experiment, progress_of, run_experiment
    from bot.grid import load_grid
    from bot.store import Store

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    base = resolve_config(args)
    grid = load_grid(args.grid)
    plan = plan_experiment(base, grid)
    db = Path(args.db) if args.db else base.resolve_path(base.store.path)

    if args.dry_run:
        if db.exists():
            async with await Store.open(db, create=False) as store:
                progress = await progress_of(store, plan)
        else:
            progress = None
        print(describe(plan, progress))
        print(f"database: {db}" + ("" if db.exists() else " (not created yet)"))
        return 0

    if args.with_agreemate:  # before hours of negotiations: is there anything to import?
        from bot.data_sources import locate_folder

        locate_folder(base, "agreemate-results")
    async with await Store.open(db) as store:
        stats = await run_experiment(plan, store, workers=args.workers,
                                     progress=not args.no_progress,
                                     retry_errors=args.retry_errors)
        if args.with_agreemate:
            added, present = await import_reference_runs(store, base)
            print(f"AgreeMate published runs: {added} file(s) imported now, {present} already in "
                  f"{db}")
        stored = (await progress_of(store, plan)).stored(plan)
    print(f"experiment {plan.name!r}: {stored}/{plan.planned} negotiations stored in {db} "
          f"({stats.ran} run now, {stats.already_done} before; {len(plan.tournaments)} pairings)")
    if stats.ran:
        minutes = stats.wall_seconds / 60
        print(f"  {stats.deals} deals, {stats.errors} agent errors, {minutes:.1f} min "
              f"({60 * stats.ran / max(stats.wall_seconds, 1e-9):.1f} negotiations/minute)")
    for example in stats.error_examples:
        print(f"  error: {example}", file=sys.stderr)
    print(f"  next: haggle report --db {db} --tournament '{plan.name}/*'"
          + (" --tournament 'agreemate/*'" if args.with_agreemate else ""))
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_experiment(args))
    except KeyboardInterrupt:
        print("haggle: interrupted; the negotiations already finished are stored. Rerun the same "
              "command to finish the rest.", file=sys.stderr)
        return 130
