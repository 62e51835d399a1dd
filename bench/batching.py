"""Batched decoding: one model serving many negotiations, beside one instance per seat.

Runs, side by side in one run, each in a fresh child process (so peak RSS is its own):

1. the same tournament (the configured `buyer` vs `seller`, on the base model with one narration
   a turn as first measured, on the first --scenarios AgreeMate
   scenarios x --repetitions, --max-turns turns) at 1, 2, 4, 6 and 8 concurrent negotiations
   (tournament workers), on today's backend (`llamacpp`: one llama.cpp instance per agent seat,
   each with llama.cpp's default threads, every reply token drawn: the backend the issue
   measured), at 1 and 6 on the per-seat backend as it ships now (`per-seat`: the same, with
   the reply's forced JSON opening decoded with the prompt) and on the batched one (`llamacpp-batched`: one
   engine, one context with 2 x workers sequences, --batched-threads threads, the model in
   --batch-format's file type, see bench/batch_kernels.py). Printed per
   run: negotiations per minute, generated tokens per second, peak RSS, invalid acts,
   reservation violations, fallback turns, prefix reuse (prompt tokens llama.cpp evaluated /
   tokens in the final context, per agent per negotiation: the worst), and how many
   negotiations came out identical (every act, price and word) to today's backend one at a time
   under the same seeds;
2. --games concurrent Discord games (the real cog through bot/queues.py's model queue, the fake
   Discord objects of tests/bot_fakes.py) against the hybrid seller, --messages offers each:
   p50/p95 reply latency and peak RSS, with today's backend on --today-slots instances (the
   queue's model_slots) and with the batched one (one sequence per game), at each of --paces:
   "lockstep" (every player offers again 50-200 ms after the reply: the worst case) and
   "person" (each pause drawn from 5-15 s, the same in every run: reading the reply and
   typing the next offer).

Models load before the clock starts. The ratios printed at the end are the issue's "Must show".

    .venv/bin/python bench/batching.py [--scenarios 6] [--repetitions 2] [--max-turns 6]
        [--levels 1,2,4,6,8] [--batched-threads 2] [--batch-format F16] [--games 12] [--messages 3]
        [--paces lockstep,person] [--seller base|shipped] [--batched-slots N] [--kv-type q8_0]
        [--batched-ctx N]                    (--levels '' runs the Discord part alone)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCHED_CTX = 2048  # each conversation's window on the batched engine


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_spec(backend: str, *, slots: int, threads: int | None, name: str = "default",
               batch_format: str | None = None, lora: str | None = None,
               kv_type: str | None = None, n_ctx: int | None = None) -> Any:
    from bot.llm.models import ModelSpec

    if backend == "batched":
        return ModelSpec(name=name, backend="llamacpp-batched", n_slots=slots,
                         n_ctx=n_ctx or BATCHED_CTX, n_threads=threads, batch_format=batch_format,
                         lora=lora, kv_type=kv_type)
    if backend == "per-seat":  # the per-seat backend as it ships now (forced openings)
        return ModelSpec(name=name, backend="llamacpp", lora=lora)
    # "today": the per-seat backend as the issue measured it (n_ctx 4096, llama.cpp's default
    # threads, every reply token drawn)
    return ModelSpec(name=name, backend="llamacpp", forced_openings=False, lora=lora)


# --------------------------------------------------------------------------- tournament child


def turn_key(turn: Any) -> tuple[Any, ...]:
    return (turn.role.value, turn.act.value, turn.price, turn.utterance)


async def tournament_child(args: argparse.Namespace) -> dict[str, Any]:
    from bot.agent_factory import AgentFactory
    from bot.config import load_config
    from bot.negotiation.guard import utterance_problem, violates_reservation
    from bot.negotiation.prompts import REPLY_ACTS
    from bot.negotiation.turns import standing_price
    from bot.store import Store
    from bot.tournament import plan_tournament, run_tournament

    cfg = load_config(args.config)
    spec = model_spec(args.backend, slots=2 * args.workers, threads=args.batched_threads,
                      batch_format=args.batch_format)
    # the agents as this bench has always measured them: the base model, one narration a turn
    # (the shipped defaults narrate with an adapter and 4 candidates: docs/narration.md)
    agents = {name: replace(cfg.agents[name], model="default", candidates=1)
              for name in ("buyer", "seller")}
    cfg = replace(cfg, models={**cfg.models, "default": spec}, agents={**cfg.agents, **agents})
    plan = plan_tournament(cfg, buyers=["buyer"], sellers=["seller"], scenario_set="agreemate",
                           scenarios=args.scenarios, repetitions=args.repetitions,
                           max_turns=args.max_turns,
                           name=f"bench-batching-{args.backend}-{args.workers}")
    rss_before = rss_mb()
    factory = AgentFactory(cfg)
    workers = min(args.workers, plan.planned)
    for k in range(workers):  # load what the workers will use, before the clock
        for name, role in (("buyer", "buyer"), ("seller", "seller")):
            await factory.build(name, role, seat=f"w{k}/{name}/{role}").backend.load()
    records: list[Any] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            async with await Store.open(os.path.join(tmp, "bench.db")) as store:
                stats = await run_tournament(cfg, plan, store, workers=workers, progress=False,
                                             factory=factory, on_stored=records.append)
            engines = {id(b.engine): b.engine for b in factory.pool.backends
                       if hasattr(b, "engine")}
        finally:
            await factory.aclose()
    invalid = violations = fallbacks = generated = 0
    reuse: list[float] = []
    outcomes = {}
    for rec in records:
        violations += rec.metrics["reservation_violations"] or 0
        for i, turn in enumerate(rec.turns):
            earlier = rec.turns[:i]
            on_table = [p for p in (standing_price(earlier, turn.role.other),
                                    standing_price(earlier, turn.role)) if p]
            if (turn.act not in REPLY_ACTS or not turn.utterance.strip()
                    or utterance_problem(turn, on_table) is not None):
                invalid += 1
            violations += violates_reservation(turn, rec.scenario, earlier)
            fallbacks += turn.fallback
            generated += turn.completion_tokens or 0
        for role in ("buyer", "seller"):
            mine = [t for t in rec.turns if t.role.value == role and not t.fallback
                    and t.prompt_tokens]
            if mine:
                final = mine[-1].prompt_tokens + (mine[-1].completion_tokens or 0)
                reuse.append(sum(t.prompt_tokens_evaluated or 0 for t in mine) / final)
        key = f"{rec.scenario.id}"
        outcomes.setdefault(key, []).append([rec.outcome.value, rec.deal_price,
                                             [turn_key(t) for t in rec.turns]])
    steps = sum(e.steps for e in engines.values())
    # "workers" is the level asked for; at most as many negotiations as planned run at once
    return {"backend": args.backend, "workers": args.workers, "at_once": workers, "n": stats.ran,
            "wall": stats.wall_seconds,
            "per_min": stats.per_minute, "tok_s": generated / stats.wall_seconds,
            "rss": rss_mb(), "rss_before": rss_before, "invalid": invalid,
            "violations": int(violations), "fallbacks": fallbacks, "errors": stats.errors,
            "reuse_max": max(reuse) if reuse else None,
            "reuse_mean": statistics.mean(reuse) if reuse else None,
            "per_step": (sum(e.batched_tokens for e in engines.values()) / steps) if steps else None,
            "outcomes": outcomes}


# --------------------------------------------------------------------------- Discord child


# A person between two offers: reads the bot's reply (~10 words, 2-3 s) and types the next
# (~5 words at Discord's typical 35-45 words a minute, 5-10 s). "person" draws each pause from
# 5-15 s; "lockstep" answers at once (50-200 ms apart), the worst case a machine can send.
PACES = {"lockstep": None, "person": (5.0, 15.0)}


def think_seconds(pace: str, player: int, message: int) -> float:
    """The pause before ``player``'s ``message``-th offer, the same in every run."""
    span = PACES[pace]
    if span is None:
        return 0.05 * (player % 5)
    return random.Random(f"{player}/{message}").uniform(*span)


async def discord_child(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from bot_fakes import LONGBOARD, World, invoke, make_config, start_bot

    seller = {"kind": "llm", "role": "seller", "model": "fake", "policy": "hybrid", "seed": 0}
    lora = None
    if args.seller == "shipped":  # the seller people meet by default: its model's adapter,
        from bot.config import load_config  # candidates, pick, sentences, rephrase, as configured

        repo_cfg = load_config(args.config or ROOT / "config.toml")
        shipped = repo_cfg.agents["seller"]
        seller.update(candidates=shipped.candidates, pick=shipped.pick, rephrase=shipped.rephrase)
        if shipped.sentences is not None:
            seller["sentences"] = shipped.sentences
        lora = repo_cfg.models[shipped.model].lora
        if args.reply_budget is None:
            from bot.bot_config import bot_config

            args.reply_budget = bot_config(repo_cfg).reply_budget_s
    slots = (args.batched_slots or args.games) if args.backend == "batched" else args.today_slots
    cfg = make_config(bot={"model_slots": args.today_slots, "queue_size": args.games * 2,
                           "reply_budget_s": args.reply_budget or 0.0},
                      agents={"llm-seller": seller})
    cfg = replace(cfg, models={"fake": model_spec(args.backend, slots=slots, name="fake",
                                                  threads=args.batched_threads,
                                                  batch_format=args.batch_format, lora=lora,
                                                  kv_type=args.kv_type, n_ctx=args.batched_ctx)})
    rss_before = rss_mb()
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="haggle-bench-") as tmp:
        bot = await start_bot(Path(tmp), cfg, db=Path(tmp) / "bench.db")
        world = World(bot)
        # load the model(s) before the clock: one backend per queue slot (today), one engine
        for k in range(slots if args.backend == "today" else 1):
            await bot.factory.pool.backend("fake", f"discord/fake/slot{k}").load()
        people = [world.person(f"player{i}") for i in range(args.games)]

        async def player(i: int, person: Any) -> None:
            interaction = world.interaction(person, namespace={"role": "buyer"})
            await invoke(world.games.haggle, interaction, item=LONGBOARD, agent="llm-seller")
            thread = next(t for t in world.channel.threads
                          if t.name.startswith(f"{person.name} haggles"))
            for k in range(args.messages):
                await asyncio.sleep(think_seconds(args.pace, i, k))
                answers = len(thread.messages)
                t0 = time.perf_counter()
                await world.say(person, thread, f"would you take ${100 + 4 * k + i % 3}?")
                latencies.append(time.perf_counter() - t0)
                if len(thread.messages) <= answers:
                    raise RuntimeError("the bot did not answer")

        t0 = time.perf_counter()
        try:
            await asyncio.gather(*(player(i, p) for i, p in enumerate(people)))
        finally:
            wall = time.perf_counter() - t0
            await bot.close()
        said = said_by_the_bot(Path(tmp) / "bench.db")
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"backend": args.backend, "pace": args.pace, "seller": args.seller, "slots": slots,
            "games": args.games,
            "turns": len(latencies),
            "p50": q[49], "p95": q[94], "max": max(latencies), "wall": wall, "rss": rss_mb(),
            "rss_before": rss_before, "reply_budget": args.reply_budget, **said}


def said_by_the_bot(db: Path) -> dict[str, int]:
    """How the bot's turns of the games in ``db`` were worded: by the model, in a rephrased
    round, or by the template (and of those, how many for want of time: the reply budget)."""
    import sqlite3

    from bot.negotiation.llm_agent import REPLY_BUDGET

    counts = {"bot_turns": 0, "repaired": 0, "templates": 0, "over_budget": 0}
    with sqlite3.connect(db) as con:
        for (state,) in con.execute("SELECT state FROM games"):
            data = json.loads(state)
            for t in data["turns"]:
                if t["role"] == data["human_role"]:
                    continue
                counts["bot_turns"] += 1
                counts["repaired"] += bool(t.get("repaired"))
                counts["templates"] += bool(t.get("fallback"))
                counts["over_budget"] += bool(t.get("fallback")) and REPLY_BUDGET in (t.get("guard") or "")
    return counts


# --------------------------------------------------------------------------- raw decode child


def decode_child(args: argparse.Namespace) -> dict[str, Any]:
    """llama_decode alone: tokens/s when one step carries n tokens of n sequences (batched
    generation) or n tokens of one sequence (a prompt chunk), after a 128-token prompt each; then
    n sequences again with the narrator adapter applied to the same context (what the LoRA costs
    a step, so whether merging it into the weights would pay)."""
    import llama_cpp

    from bot.llm.batch_engine import BatchedEngine
    from bot.llm.lora import resolve_lora
    from bot.llm.models import resolve_model

    engine = BatchedEngine("embedded", n_slots=12, n_ctx=1024, n_threads=args.batched_threads,
                           batch_format=args.batch_format)
    asyncio.run(engine.start())
    ctx, batch, mem = engine._ctx.ctx, engine._batch, engine._ctx.memory
    prompt = engine._model.tokenize(b"I would like to buy your bike for a fair price. " * 40,
                                    True, False)[:128]

    def decode(items: list[tuple[int, int, int]]) -> None:
        batch.n_tokens = len(items)
        for i, (token, pos, seq) in enumerate(items):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
            batch.seq_id[i][0], batch.logits[i] = seq, True
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    with engine._cond:  # the engine's thread is idle: the bench drives the context itself
        for seq in range(12):
            decode([(t, i, seq) for i, t in enumerate(prompt)])
        rows = {}
        for n in (1, 2, 4, 8, 12):
            steps = 20
            t0 = time.perf_counter()
            for k in range(steps):
                decode([(prompt[k], 128 + k, seq) for seq in range(n)])
            multi = n * steps / (time.perf_counter() - t0)
            for seq in range(n):
                llama_cpp.llama_memory_seq_rm(mem, seq, 128, -1)
            t0 = time.perf_counter()
            for k in range(steps):
                decode([(prompt[j % 128], 128 + k * n + j, 0) for j in range(n)])
            single = n * steps / (time.perf_counter() - t0)
            llama_cpp.llama_memory_seq_rm(mem, 0, 128, -1)
            rows[n] = {"multi": multi, "one": single}
        engine._set_adapter(resolve_lora(ROOT / "adapters" / "narrator", base=resolve_model("embedded")))
        for n in rows:  # the same steps, the adapter's products added to every layer it targets
            t0 = time.perf_counter()
            for k in range(20):
                decode([(prompt[k], 128 + k, seq) for seq in range(n)])
            rows[n]["lora"] = n * 20 / (time.perf_counter() - t0)
            for seq in range(n):
                llama_cpp.llama_memory_seq_rm(mem, seq, 128, -1)
    engine.close()
    return {"rows": rows}


# --------------------------------------------------------------------------- parent


def child(argv: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child {' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def same(a: dict[str, list], b: dict[str, list]) -> int:
    return sum(x == y for key in a for x, y in zip(a[key], b.get(key, []), strict=False))


def print_tournament(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    reference = next((r for r in rows if r["backend"] == "today" and r["workers"] == 1),
                     {"n": 0, "outcomes": {}})
    print(f"\ntournament: buyer vs seller (hybrid), {reference['n']} negotiations "
          f"({args.scenarios} scenarios x {args.repetitions}), {args.max_turns} turns at most")
    head = (f"{'backend':<9}{'at once':>8}{'neg/min':>9}{'tok/s':>8}{'peak MB':>9}{'invalid':>8}"
            f"{'viol.':>6}{'fallb.':>7}{'reuse max':>10}{'tok/step':>9}{'same':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['backend']:<9}{r['workers']:>8}{r['per_min']:>9.2f}{r['tok_s']:>8.1f}"
              f"{r['rss']:>9.0f}{r['invalid']:>8}{r['violations']:>6}{r['fallbacks']:>7}"
              f"{r['reuse_max'] or 0:>10.2f}{r['per_step'] or 0:>9.1f}"
              f"{same(r['outcomes'], reference['outcomes']):>4}/{r['n']:<2}")


def main(args: argparse.Namespace) -> int:
    load = os.getloadavg()
    print(f"bench/batching.py on {os.cpu_count()} CPU(s), load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f}; batched engine threads: {args.batched_threads or 'all'}")
    fmt = [f"--batch-format={args.batch_format}"] if args.batch_format else []
    raw = child(["--child=decode", f"--batched-threads={args.batched_threads or 0}", *fmt])
    print(f"llama_decode alone (SmolLM2-135M {args.batch_format or 'Q4_1'}), tokens/s with n "
          f"tokens in one step:")
    print("  n               " + "".join(f"{n:>8}" for n in raw["rows"]))
    for key, label in (("multi", "n sequences"), ("one", "one sequence"),
                       ("lora", "n seq. + LoRA")):
        print(f"  {label:<16}" + "".join(f"{r[key]:>8.1f}" for r in raw["rows"].values()))
    print("  the narrator adapter's cost a step, n sequences: " + ", ".join(
        f"n={n} x{r['multi'] / r['lora']:.2f}" for n, r in raw["rows"].items()))
    if args.decode_only:
        return 0
    base = [f"--scenarios={args.scenarios}", f"--repetitions={args.repetitions}",
            f"--max-turns={args.max_turns}"]
    if args.batched_threads:
        base.append(f"--batched-threads={args.batched_threads}")
    base += fmt
    if args.config:
        base.append(f"--config={args.config}")
    rows = []
    for workers in args.levels:
        for backend in ("today", "batched", *(("per-seat",) if workers in (1, 6) else ())):
            rows.append(child(["--child=tournament", f"--backend={backend}",
                               f"--workers={workers}", *base]))
            r = rows[-1]
            print(f"  {backend:<8} workers {workers}: {r['n']} negotiations ({r['at_once']} at once "
                  f"at most) in {r['wall']:.1f} s",
                  flush=True)
    if rows:
        print_tournament(rows, args)
    games = [child(["--child=discord", f"--backend={b}", f"--pace={pace}", f"--games={args.games}",
                    f"--seller={args.seller}",
                    *([f"--reply-budget={args.reply_budget}"]
                      if args.reply_budget is not None else []),
                    *([f"--batched-slots={args.batched_slots}"] if args.batched_slots else []),
                    *([f"--kv-type={args.kv_type}"] if args.kv_type else []),
                    *([f"--batched-ctx={args.batched_ctx}"] if args.batched_ctx else []),
                    f"--messages={args.messages}", f"--today-slots={args.today_slots}",
                    *base]) for pace in args.paces for b in ("today", "batched")]
    print(f"\nDiscord: {args.games} concurrent games x {args.messages} offers (+ the openings), "
          f"hybrid seller ({args.seller}), through the model queue; pace: lockstep = each offer 50-200 ms after "
          f"the reply, person = {PACES['person'][0]:g}-{PACES['person'][1]:g} s after it; batched "
          f"engine: {args.batched_slots or args.games} sequences x {args.batched_ctx or BATCHED_CTX} "
          f"tokens, KV cache {args.kv_type or 'f16'}")
    for g in games:
        print(f"{g['pace']:<9}{g['backend']:<9}{g['slots']:>3} slot(s): reply p50 {g['p50']:.2f} s, "
              f"p95 {g['p95']:.2f} s, max {g['max']:.2f} s; {g['turns']} replies in "
              f"{g['wall']:.1f} s; peak RSS {g['rss']:.0f} MB; of the bot's {g['bot_turns']} turns "
              f"{g['repaired']} rephrased, {g['templates']} templates ({g['over_budget']} for want "
              f"of time, reply budget {g['reply_budget'] or 'none'})")
    by = {(r["backend"], r["workers"]): r for r in rows}
    print("\nMust show:")
    if ("batched", 6) in by:
        six, one_today = by[("batched", 6)], by[("today", 1)]
        one_b = by.get(("batched", 1))
        today6 = by.get(("today", 6))
        print(f"  six at once (batched) / one at a time (today): "
              f"{six['per_min'] / one_today['per_min']:.2f}x (goal >= 3.0)"
              + (f"; batched 6/1: {six['per_min'] / one_b['per_min']:.2f}x" if one_b else "")
              + (f"; today 6/1: {today6['per_min'] / one_today['per_min']:.2f}x" if today6 else ""))
    if ("batched", 6) in by and ("per-seat", 1) in by:
        seat1, seat6 = by[("per-seat", 1)], by.get(("per-seat", 6))
        print(f"  six at once (batched) / one at a time (per-seat as shipped now, forced openings): "
              f"{by[('batched', 6)]['per_min'] / seat1['per_min']:.2f}x"
              + (f"; per-seat 6/1: {seat6['per_min'] / seat1['per_min']:.2f}x" if seat6 else ""))
    batched_rows = [r for r in rows if r["backend"] == "batched"]
    if batched_rows:
        print(f"  batched: invalid acts {sum(r['invalid'] for r in batched_rows)}, reservation "
              f"violations {sum(r['violations'] for r in batched_rows)}, worst prefix reuse "
              f"{max(r['reuse_max'] or 0 for r in batched_rows):.2f} (goal <= 1.3)")
    for today_g, batched_g in zip(games[::2], games[1::2], strict=True):
        print(f"  p95 reply latency, {args.games} games at {batched_g['pace']} pace, batched: "
              f"{batched_g['p95']:.2f} s (goal <= 3 s; today on {args.today_slots} instances: "
              f"{today_g['p95']:.2f} s)")
    print(f"  peak RSS with {args.games} conversations (batched) {batched_g['rss']:.0f} MB vs "
          f"{args.today_slots} per-seat instances (today) {today_g['rss']:.0f} MB")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="config file (default: the repo's config.toml)")
    parser.add_argument("--scenarios", type=int, default=6)
    parser.add_argument("--repetitions", type=int, default=2)
    parser.add_argument("--max-turns", type=int, default=6)
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",") if x],
                        default=[1, 2, 4, 6, 8])
    parser.add_argument("--batched-threads", type=int, default=None,
                        help="threads of the batched engine (default: every CPU)")
    parser.add_argument("--batch-format", choices=("F16", "Q8_0", "Q4_0", "Q4_1"),
                        help="file type the batched engine runs (batch_format; default: as shipped)")
    parser.add_argument("--games", type=int, default=12)
    parser.add_argument("--messages", type=int, default=3)
    parser.add_argument("--today-slots", type=int, default=4,
                        help="model_slots (instances) for today's backend in the Discord run")
    parser.add_argument("--batched-slots", type=int, default=None,
                        help="sequences of the batched engine in the Discord run (default: --games)")
    parser.add_argument("--kv-type", default=None, help="the batched engine's KV cache type in the "
                        "Discord run (f16, q8_0, q4_0; default f16)")
    parser.add_argument("--batched-ctx", type=int, default=None,
                        help=f"tokens per conversation of the batched engine in the Discord run "
                             f"(default {BATCHED_CTX})")
    parser.add_argument("--paces", type=lambda s: s.split(","), default=list(PACES),
                        help="the Discord players' paces to run (lockstep,person)")
    parser.add_argument("--pace", choices=tuple(PACES), default="lockstep", help=argparse.SUPPRESS)
    parser.add_argument("--seller", choices=("base", "shipped"), default="base",
                        help="the Discord games' seller: the base model with one narration a turn "
                             "(as first measured) or the config's `seller` (the narrator adapter, "
                             "its candidates and pick)")
    parser.add_argument("--reply-budget", type=float, default=None,
                        help="[bot] reply_budget_s for the Discord games (default: the config's; "
                             "0 = no limit)")
    parser.add_argument("--decode-only", action="store_true", help="the llama_decode table only")
    parser.add_argument("--child", choices=("tournament", "discord", "decode"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--backend", choices=("today", "per-seat", "batched"), help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.child:
        import logging

        logging.basicConfig(level=logging.ERROR)
        if parsed.child == "decode":
            parsed.batched_threads = parsed.batched_threads or None
            print(json.dumps(decode_child(parsed)))
            sys.exit(0)
        run = tournament_child if parsed.child == "tournament" else discord_child
        print(json.dumps(asyncio.run(run(parsed))))
        sys.exit(0)
    sys.exit(main(parsed))
