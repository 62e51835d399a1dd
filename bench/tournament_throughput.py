"""Tournament throughput (negotiations/minute) and where the wall time goes.

Runs the same tournament code as `haggle tournament` (into a throwaway database) for

- rule agents: rule-buyer vs rule-seller on the 30 AgreeMate scenarios x --rule-repetitions;
- LLM agents: the configured `buyer` vs `seller` (the embedded SmolLM2-135M through llama.cpp,
  one instance per agent seat) on the first --llm-scenarios AgreeMate scenarios;

each with --workers 1 and 2, side by side in one run, and prints per run: negotiations per
minute, and the shares of worker time (workers x wall) spent

- in the model backend (llama.cpp chat calls, measured by wrapping each agent's backend),
- in the agents' respond() outside the backend (prompt building, parsing, guardrails),
- writing to the store,
- idle: a worker with nothing left to take while another finishes its last negotiation
  (a tail effect: large when a run has about as many negotiations as workers);
- in orchestration: everything else (the runner, the queue, the progress bar).

With two workers on one event loop, a worker's respond() time includes the slices other
workers run while it awaits (rule agents hold the loop, so their shares at --workers 2 are
approximate); LLM agents wait on llama.cpp in a thread, so theirs are exact.

Goal: for LLM agents, store + orchestration <= 5% of wall time (idle is shown apart). Models
are loaded before the clock starts (loading is a one-off, not throughput). Without a model
(llama-cpp-python or the embedded model missing) the LLM rows say why and are skipped.

    .venv/bin/python bench/tournament_throughput.py [--llm-scenarios 2] [--rule-repetitions 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.agent_factory import AgentFactory  # noqa: E402
from bot.config import load_config  # noqa: E402
from bot.errors import HaggleError  # noqa: E402
from bot.store import Store  # noqa: E402
from bot.tournament import plan_tournament, run_tournament  # noqa: E402


class MeteredBackend:
    """A backend wrapper adding up the wall time of its chat calls."""

    def __init__(self, inner, totals: dict[str, float]) -> None:
        self.inner, self.totals = inner, totals

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def chat(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return await self.inner.chat(*args, **kwargs)
        finally:
            self.totals["backend"] += time.perf_counter() - t0


class MeteredFactory:
    """The tournament's AgentFactory, with every LLM agent's backend metered."""

    def __init__(self, inner: AgentFactory, totals: dict[str, float]) -> None:
        self.inner, self.totals = inner, totals

    def build(self, name, role, *, seed=None, seat=None):
        agent = self.inner.build(name, role, seed=seed, seat=seat)
        if hasattr(agent, "backend"):
            agent.backend = MeteredBackend(agent.backend, self.totals)
        return agent

    async def aclose(self) -> None:
        await self.inner.aclose()


async def preload(factory: AgentFactory, plan, workers: int) -> float:
    """Load the models of the seats the workers will use (same seat names as the tournament)."""
    t0 = time.perf_counter()
    for k in range(workers):
        for pairing in plan.pairings:
            for name, role in ((pairing.buyer, "buyer"), (pairing.seller, "seller")):
                agent = factory.build(name, role, seat=f"w{k}/{name}/{role}")
                if hasattr(agent, "backend") and hasattr(agent.backend, "load"):
                    await agent.backend.load()
    return time.perf_counter() - t0


async def measure(cfg, label: str, plan, workers: int) -> dict:
    totals = {"backend": 0.0}
    factory = AgentFactory(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            load_s = await preload(factory, plan, min(workers, plan.planned))
            async with await Store.open(os.path.join(tmp, "bench.db")) as store:
                stats = await run_tournament(cfg, plan, store, workers=workers, progress=False,
                                             factory=MeteredFactory(factory, totals))
        finally:
            await factory.aclose()
    worker_time = stats.workers * stats.wall_seconds
    backend = totals["backend"] / worker_time
    agents = stats.agent_seconds / worker_time
    store = stats.store_seconds / worker_time
    return {"label": label, "workers": workers, "n": stats.ran, "wall": stats.wall_seconds,
            "per_min": stats.per_minute, "load": load_s, "backend": backend,
            "agent_other": max(0.0, agents - backend), "store": store,
            "idle": stats.idle_seconds / worker_time,
            "orchestration": max(0.0, 1.0 - agents - store - (stats.build_seconds
                                                              + stats.idle_seconds) / worker_time),
            "errors": stats.errors, "deals": stats.deals}


def llm_unavailable(cfg) -> str | None:
    """Why the LLM agents cannot run here, or None."""
    try:
        for name in ("buyer", "seller"):
            if cfg.agent(name).kind != "llm":
                return f"agent {name!r} is not an LLM agent in config.toml"
            from bot.tournament import model_snapshot

            model_snapshot(cfg, cfg.agent(name).model)  # resolves the model file
        import llama_cpp  # noqa: F401
    except (HaggleError, ImportError) as exc:
        return str(exc)
    return None


def show(rows: list[dict]) -> None:
    header = (f"{'agents':<18}{'workers':>8}{'negot.':>8}{'wall s':>9}{'neg/min':>10}"
              f"{'backend':>9}{'agent':>9}{'store':>9}{'orch.':>9}{'st+orch':>9}{'idle':>8}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['label']:<18}{r['workers']:>8}{r['n']:>8}{r['wall']:>9.2f}{r['per_min']:>10.1f}"
              f"{r['backend']:>9.2%}{r['agent_other']:>9.2%}{r['store']:>9.2%}"
              f"{r['orchestration']:>9.2%}{r['store'] + r['orchestration']:>9.2%}"
              f"{r['idle']:>8.1%}")


async def main(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    rows = []
    rule_plan = plan_tournament(cfg, buyers=["rule-buyer"], sellers=["rule-seller"],
                                scenario_set="agreemate", scenarios=30,
                                repetitions=args.rule_repetitions, name="bench-rule")
    for workers in (1, 2):
        rows.append(await measure(cfg, "rule", rule_plan, workers))
    reason = None if args.skip_llm else llm_unavailable(cfg)
    if not args.skip_llm and reason is None:
        llm_plan = plan_tournament(cfg, buyers=["buyer"], sellers=["seller"],
                                   scenario_set="agreemate", scenarios=args.llm_scenarios,
                                   name="bench-llm")
        for workers in (1, 2):
            rows.append(await measure(cfg, "llm (embedded)", llm_plan, workers))
    print(f"tournament throughput on {os.cpu_count()} CPU(s); shares are of workers x wall time")
    show(rows)
    if args.skip_llm:
        print("LLM agents: skipped (--skip-llm)")
    elif reason is not None:
        print(f"LLM agents: not run here: {reason}")
    by = {(r["label"], r["workers"]): r for r in rows}
    for label in ("rule", "llm (embedded)"):
        if (label, 1) in by:
            one, two = by[(label, 1)], by[(label, 2)]
            print(f"{label}: --workers 2 / --workers 1 throughput = "
                  f"{two['per_min'] / one['per_min']:.2f}x; store + orchestration "
                  f"{one['store'] + one['orchestration']:.2%} (w1), "
                  f"{two['store'] + two['orchestration']:.2%} (w2)"
                  + (f"; models loaded in {one['load']:.1f} s before timing" if one["load"] > 0.05
                     else ""))
    llm = [r for r in rows if r["label"].startswith("llm")]
    if llm:
        worst = max(r["store"] + r["orchestration"] for r in llm)
        print(f"goal store + orchestration <= 5% for LLM agents: "
              f"{'met' if worst <= 0.05 else 'NOT met'} (worst {worst:.2%})")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="config file (default: the repo's config.toml)")
    parser.add_argument("--llm-scenarios", type=int, default=2,
                        help="scenarios for the LLM runs (each takes ~a minute on 2 CPUs)")
    parser.add_argument("--rule-repetitions", type=int, default=10,
                        help="repetitions of the 30 scenarios for the rule runs")
    parser.add_argument("--skip-llm", action="store_true", help="rule agents only")
    sys.exit(asyncio.run(main(parser.parse_args())))
