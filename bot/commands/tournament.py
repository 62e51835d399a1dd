"""`haggle tournament`: round-robin bot-vs-bot negotiations into the database, resumable.

    haggle tournament --agents rule,rule-buyer,rule-seller --scenarios 30 --workers 2
    haggle tournament --buyers buyer --sellers seller,rule-seller --scenario-set agreemate

Rerunning the same command after a crash or Ctrl-C finishes only what is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from bot.scenarios import SCENARIO_SETS

    p = sub.add_parser(
        "tournament", help="bot-vs-bot tournament into the database (resumable)",
        description="Run every pairing on every scenario (x repetitions) and store each "
                    "negotiation, its turns and its metrics in the database. Defaults come from "
                    "[tournament] in config.toml. Rerun the same command to resume.")
    who = p.add_argument_group("pairings (or [tournament] agents / buyers + sellers)")
    who.add_argument("--agents", metavar="A,B,...",
                     help="every ordered pair of distinct agents that can sit in those seats")
    who.add_argument("--buyers", metavar="A,B,...",
                     help="buyer agents (with --sellers: every buyer x seller)")
    who.add_argument("--sellers", metavar="C,D,...", help="seller agents")
    p.add_argument("--scenarios", type=int, metavar="N",
                   help="how many scenarios (default 30, drawn from the set with --seed; "
                        "the whole set when N is its size)")
    p.add_argument("--scenario-set", choices=SCENARIO_SETS,
                   help="where scenarios come from (default [tournament] scenario_set, "
                        "agreemate: the paper's 30 scenarios of its published runs, shipped; "
                        "the craigslist sets after `haggle data fetch craigslist`)")
    p.add_argument("--seed", type=int, help="seed of the scenario draw (default 0)")
    p.add_argument("--repetitions", type=int, metavar="R",
                   help="play each pairing x scenario R times (agent seed + r at repetition r)")
    p.add_argument("--workers", type=int, metavar="W",
                   help="negotiations run concurrently (each worker has its own agents)")
    p.add_argument("--max-turns", type=int, help="turn cap (default from [negotiation])")
    p.add_argument("--db", metavar="PATH", help="the database (default [store] path)")
    p.add_argument("--name", help="tournament name (default: derived from the arguments, so "
                                  "the same command resumes the same tournament)")
    p.add_argument("--retry-errors", action="store_true",
                   help="run again the negotiations that ended in an agent error")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


async def _tournament(args: argparse.Namespace) -> int:
    from bot.commands._common import resolve_config
    from bot.store import Store
    from bot.tournament import plan_tournament, run_tournament, split_names, tournament_config

    cfg = resolve_config(args)
    defaults = tournament_config(cfg)
    agents = split_names(args.agents)
    buyers, sellers = split_names(args.buyers), split_names(args.sellers)
    if not (agents or buyers or sellers):
        agents, buyers, sellers = defaults.agents, defaults.buyers, defaults.sellers
    plan = plan_tournament(
        cfg, agents=agents, buyers=buyers, sellers=sellers,
        scenario_set=args.scenario_set or defaults.scenario_set,
        scenarios=defaults.scenarios if args.scenarios is None else args.scenarios,
        seed=defaults.seed if args.seed is None else args.seed,
        repetitions=defaults.repetitions if args.repetitions is None else args.repetitions,
        max_turns=args.max_turns, name=args.name)
    workers = defaults.workers if args.workers is None else args.workers
    db = args.db or cfg.resolve_path(cfg.store.path)
    store = await Store.open(db)
    try:
        stats = await run_tournament(cfg, plan, store, workers=workers,
                                     progress=not args.no_progress, retry_errors=args.retry_errors)
    finally:
        await store.close()
    stored = stats.already_done + stats.ran
    print(f"tournament {plan.name!r}: {stored}/{plan.planned} negotiations stored in {db} "
          f"({stats.ran} run now, {stats.already_done} before; {len(plan.pairings)} pairing(s) x "
          f"{len(plan.scenarios)} scenario(s) x {plan.repetitions} repetition(s))")
    if stats.ran:
        print(f"  {stats.deals} deals, {stats.errors} agent errors; {stats.per_minute:.0f} "
              f"negotiations/minute with {stats.workers} worker(s)")
    for example in stats.error_examples:
        print(f"  error: {example}", file=sys.stderr)
    if stats.errors:
        print(f"  {stats.errors} negotiation(s) ended in an error (a dead model's are errors, "
              f"never results): once the cause is fixed, rerun the same command with "
              f"--retry-errors to run them again", file=sys.stderr)
    print(f"  next: haggle report --db {db} --tournament '{plan.name}'")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_tournament(args))
    except KeyboardInterrupt:
        print("haggle: interrupted; the negotiations already finished are stored. Rerun the same "
              "command to finish the rest.", file=sys.stderr)
        return 130
