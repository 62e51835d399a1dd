"""Bot-vs-bot tournaments: pairings x scenarios x repetitions, concurrent, resumable.

A tournament is planned from its arguments (``plan_tournament``): the pairings (buyer agent,
seller agent), the scenarios, the repetitions. Every planned negotiation has a key
(buyer, seller, scenario id, repetition), which is also a UNIQUE key of the database, so a
tournament is resumable by construction: ``run_tournament`` runs only the keys not yet
stored, and a negotiation is stored (with all its turns, in one transaction) only once it is
over. Kill the process at any moment and rerun the same command: it finishes what is missing,
nothing is lost or stored twice.

The tournament's name defaults to a deterministic function of its arguments, so the same
command finds the same tournament. What decides the results (pairings, scenario ids,
repetitions, negotiation settings, agent settings, model sha256s) is stored as the
tournament's config snapshot; resuming with a different snapshot is refused, so one
tournament never mixes two set-ups.

Concurrency: ``workers`` asyncio tasks take negotiations from one queue. Each worker builds its
own agents through the AgentFactory (an agent holds a model backend and its prompt cache, so
agents are never shared between concurrent negotiations): one agent per (agent name, seat) per
worker, rebuilt with a new seed at each repetition, on the same backend seat.

Seeds: ``seed`` picks the scenarios. Agents keep the seed their config gives them, shifted by
the repetition index (repetition r plays with seed + r), so repetitions of a stochastic agent
differ and rerunning a tournament reproduces it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from bot.config import AgentConfig, Config, from_table
from bot.errors import ConfigError, DataError, StoreError
from bot.negotiation.scenario import Scenario
from bot.negotiation.turns import Role

if TYPE_CHECKING:
    from bot.agent_factory import AgentFactory
    from bot.negotiation.agents import Agent
    from bot.negotiation.runner import NegotiationRecord
    from bot.store import Store, TournamentRow

log = logging.getLogger(__name__)

DEFAULT_SCENARIOS = 30  # the paper ran 30 scenarios per pairing


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class TournamentConfig:
    """``[tournament]`` in config.toml: defaults for ``haggle tournament`` (flags override).

    Pairings: ``agents`` (every ordered pair of distinct agents that can sit in those seats)
    or ``buyers`` x ``sellers``.
    """

    agents: tuple[str, ...] = ()
    buyers: tuple[str, ...] = ()
    sellers: tuple[str, ...] = ()
    scenario_set: str = "agreemate"
    scenarios: int = DEFAULT_SCENARIOS
    seed: int = 0
    repetitions: int = 1
    workers: int = 1
    # reports flag an agent whose share of fallback turns passes this (bot/report/build.py)
    fallback_flag: float = 0.1

    def check(self, where: str) -> None:
        from bot.scenarios import check_plan

        if not 0 <= self.fallback_flag <= 1:
            raise ConfigError(f"{where}.fallback_flag: must be a share in [0, 1], got "
                              f"{self.fallback_flag}")

        check_plan(where, self.scenario_set, scenarios=self.scenarios,
                   repetitions=self.repetitions, workers=self.workers)
        if self.agents and (self.buyers or self.sellers):
            raise ConfigError(f"{where}: set either agents or buyers + sellers, not both")
        if bool(self.buyers) != bool(self.sellers):
            raise ConfigError(f"{where}: buyers and sellers go together; set both")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str,
                   base_dir: Any = None) -> TournamentConfig:
        return from_table(cls, table, where)


def tournament_config(cfg: Config) -> TournamentConfig:
    """The ``[tournament]`` section, or the defaults when config.py does not load it."""
    section = cfg.extra.get("tournament")
    return section if isinstance(section, TournamentConfig) else TournamentConfig()


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Pairing:
    buyer: str
    seller: str

    def __str__(self) -> str:
        return f"{self.buyer} vs {self.seller}"


@dataclass(frozen=True)
class Match:
    """One planned negotiation."""

    pairing: Pairing
    scenario: Scenario
    repetition: int

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.pairing.buyer, self.pairing.seller, self.scenario.id, self.repetition)


@dataclass(frozen=True)
class Plan:
    name: str
    pairings: tuple[Pairing, ...]
    scenarios: tuple[Scenario, ...]
    repetitions: int
    seed: int
    scenario_set: str
    max_turns: int
    first_mover: str
    turn_timeout: float
    max_model_failures: int = 3

    @property
    def planned(self) -> int:
        return len(self.pairings) * len(self.scenarios) * self.repetitions

    def matches(self) -> list[Match]:
        """Every negotiation, repetition by repetition, scenario by scenario: consecutive
        negotiations share a scenario, so LLM agents reuse most of their prompt cache."""
        return [Match(p, s, r) for r in range(self.repetitions) for s in self.scenarios
                for p in self.pairings]


def split_names(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"a, b,c"`` -> ("a", "b", "c"); sequences pass through; empty parts are dropped."""
    if not text:
        return ()
    parts = text.split(",") if isinstance(text, str) else list(text)
    return tuple(p.strip() for p in parts if p.strip())


def make_pairings(cfg: Config, *, agents: Sequence[str] = (), buyers: Sequence[str] = (),
                  sellers: Sequence[str] = ()) -> list[Pairing]:
    """Pairings from ``buyers`` x ``sellers``, or every ordered pair of distinct ``agents``
    where the first can buy and the second can sell, sorted by name (the order the names are
    given in changes nothing). Unknown names raise ConfigError."""
    if agents and (buyers or sellers):
        raise ConfigError("pass either --agents or --buyers with --sellers, not both")
    if bool(buyers) != bool(sellers):
        raise ConfigError("--buyers and --sellers go together: name at least one agent for "
                          "each seat")
    if not agents and not buyers:
        raise ConfigError("no pairings: pass --agents A,B,... (every ordered pair of distinct "
                          "agents) or --buyers A,... --sellers B,..., or set them in [tournament]")
    for name in (*agents, *buyers, *sellers):
        cfg.agent(name)  # ConfigError naming the unknown agent and the configured ones
    pairings: list[Pairing] = []
    if agents:
        if len(set(agents)) != len(agents):
            raise ConfigError(f"--agents names an agent twice: {', '.join(agents)}")
        for b in sorted(agents):
            for s in sorted(agents):
                if b != s and "buyer" in cfg.agent(b).roles and "seller" in cfg.agent(s).roles:
                    pairings.append(Pairing(b, s))
        if not pairings:
            raise ConfigError(f"no agent among {', '.join(agents)} can face another: a pairing "
                              f"needs one agent that can buy and a different one that can sell")
        return pairings
    for name in buyers:
        if "buyer" not in cfg.agent(name).roles:
            raise ConfigError(f"agent {name!r} is a {cfg.agent(name).role} agent and cannot buy; "
                              f"list it under --sellers or pick a buyer or generalist agent")
    for name in sellers:
        if "seller" not in cfg.agent(name).roles:
            raise ConfigError(f"agent {name!r} is a {cfg.agent(name).role} agent and cannot sell; "
                              f"list it under --buyers or pick a seller or generalist agent")
    for b in sorted(set(buyers)):
        for s in sorted(set(sellers)):
            pairings.append(Pairing(b, s))
    return pairings


def select_scenarios(cfg: Config, scenario_set: str, n: int, seed: int) -> list[Scenario]:
    """``n`` scenarios of the set: all of them in order when ``n`` is the set's size, else a
    sample drawn with ``seed`` (the same draw as ``datasets.load_scenarios(n=, seed=)``)."""
    from bot.scenarios import load_scenario_set

    if n < 1:
        raise DataError(f"zero scenarios asked for (--scenarios {n}): a tournament needs at "
                        f"least 1")
    available = load_scenario_set(cfg, scenario_set)
    if not available:
        raise DataError(f"scenario set {scenario_set!r} holds no scenarios; check its file in "
                        f"[data] of config.toml")
    if n > len(available):
        raise DataError(f"asked for {n} scenarios but {scenario_set!r} has {len(available)}: "
                        f"pass --scenarios {len(available)} or fewer")
    if n == len(available):
        return list(available)
    return random.Random(seed).sample(available, n)


def default_name(*, agents: Sequence[str], buyers: Sequence[str], sellers: Sequence[str],
                 scenario_set: str, scenarios: int, seed: int, repetitions: int) -> str:
    """A name that is a function of the arguments, so rerunning a command resumes it.

    ``--agents B,A`` and ``--agents A,B`` plan the same pairings, hence the same name.
    """
    if agents:
        who = ",".join(sorted(agents))
    else:
        who = f"{','.join(sorted(buyers))}+{','.join(sorted(sellers))}"
    return f"{who}.{scenario_set}-{scenarios}.seed{seed}.rep{repetitions}"


def plan_tournament(cfg: Config, *, agents: Sequence[str] = (), buyers: Sequence[str] = (),
                    sellers: Sequence[str] = (), scenario_set: str = "agreemate",
                    scenarios: int = DEFAULT_SCENARIOS, seed: int = 0, repetitions: int = 1,
                    max_turns: int | None = None, name: str | None = None) -> Plan:
    """Check the arguments and lay out every negotiation. Bad input raises a HaggleError."""
    if repetitions < 1:
        raise ConfigError(f"--repetitions must be >= 1, got {repetitions}")
    turns = cfg.negotiation.max_turns if max_turns is None else max_turns
    if turns < 2:
        raise ConfigError(f"--max-turns must be >= 2, got {turns}")
    pairings = make_pairings(cfg, agents=agents, buyers=buyers, sellers=sellers)
    chosen = select_scenarios(cfg, scenario_set, scenarios, seed)
    ids = [s.id for s in chosen]
    if len(set(ids)) != len(ids):  # the store's key needs unique ids
        raise DataError(f"scenario set {scenario_set!r} repeats scenario ids; fix its file")
    name = name or default_name(agents=agents, buyers=buyers, sellers=sellers,
                                scenario_set=scenario_set, scenarios=scenarios, seed=seed,
                                repetitions=repetitions)
    return Plan(name=name, pairings=tuple(pairings), scenarios=tuple(chosen),
                repetitions=repetitions, seed=seed, scenario_set=scenario_set, max_turns=turns,
                first_mover=cfg.negotiation.first_mover,
                turn_timeout=cfg.negotiation.turn_timeout_s,
                max_model_failures=cfg.negotiation.max_model_failures)


# --------------------------------------------------------------------------- snapshot


def _plan_agents(plan: Plan) -> list[str]:
    return list(dict.fromkeys(n for p in plan.pairings for n in (p.buyer, p.seller)))


def _scale_label(parameters: int | None) -> str | None:
    if not parameters:
        return None
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if parameters >= size:
            value = parameters / size
            return f"{value:.0f}{unit}" if value >= 10 else f"{value:.1f}{unit}".replace(".0", "")
    return str(parameters)


def model_snapshot(cfg: Config, model: str) -> dict[str, Any]:
    """What identifies a configured model: its file's sha256 and size for llama.cpp models,
    the endpoint for HTTP ones."""
    spec = cfg.models[model]
    from bot.llm.models import LOCAL_BACKENDS

    if spec.backend not in LOCAL_BACKENDS:
        return {"backend": spec.backend, "url": spec.url, "model": spec.remote_model,
                "sha256": None, "parameters": None}
    from bot.llm.models import inspect_gguf, resolve_model

    path = resolve_model(spec.path, cfg.base_dir)
    info = inspect_gguf(path)
    return {"backend": spec.backend, "path": spec.path, "file": str(path), "sha256": info.sha256,
            "parameters": info.parameters, "quantization": info.quantization,
            "architecture": info.architecture, "name": info.name}


def agent_metadata(agent: AgentConfig, models: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """What the report compares agents by (AgreeMate's axes: CoT, personality, scale)."""
    if agent.kind == "rule":
        return {"source": "haggle", "kind": "rule", "family": "rule", "role": agent.role,
                "cot": None, "personality": None, "scale": None, "model": None}
    model = models.get(agent.model, {})
    return {"source": "haggle", "kind": agent.kind, "family": f"{agent.kind}:{agent.policy}",
            "role": agent.role, "cot": agent.cot, "personality": agent.personality,
            "scale": _scale_label(model.get("parameters")), "model": agent.model,
            "model_name": model.get("name"), "temperature": agent.temperature}


def snapshot(cfg: Config, plan: Plan) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(config, agents metadata, models) to store with the tournament.

    ``config["settings"]`` is what decides the results: a resumed tournament must match it.
    """
    from bot import __version__

    names = _plan_agents(plan)
    agent_cfgs = {n: cfg.agent(n) for n in names}
    models = {m: model_snapshot(cfg, m) for m in
              dict.fromkeys(a.model for a in agent_cfgs.values() if a.kind == "llm")}
    negotiation = asdict(cfg.negotiation)
    for limit in ("turn_timeout_s", "max_model_failures"):  # safety limits, not the set-up
        negotiation.pop(limit)
    negotiation["max_turns"] = plan.max_turns
    settings = {
        "pairings": [[p.buyer, p.seller] for p in plan.pairings],
        "scenario_set": plan.scenario_set,
        "scenario_ids": [s.id for s in plan.scenarios],
        "repetitions": plan.repetitions,
        "negotiation": negotiation,
        "agents": {n: {k: v for k, v in asdict(a).items() if k != "name"}
                   for n, a in agent_cfgs.items()},
        "models": {m: {k: v for k, v in info.items() if k in ("backend", "sha256", "url", "model")}
                   for m, info in models.items()},
    }
    config = {"settings": settings, "seed": plan.seed, "haggle_version": __version__,
              "turn_timeout_s": plan.turn_timeout}
    agents = {n: agent_metadata(a, models) for n, a in agent_cfgs.items()}
    return config, agents, models


def _differences(old: Any, new: Any, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
        return out
    if old != new:
        return [f"{path or 'settings'}: {_shown(old)} -> {_shown(new)}"]
    return []


# --------------------------------------------------------------------------- running


@dataclass
class RunStats:
    """What a run did and where its wall time went.

    ``agent_seconds`` is the sum of Turn.seconds (time inside the agents' respond(): the model
    backend, for LLM agents); ``store_seconds`` the time spent writing to the database;
    ``build_seconds`` building agents (loading models); ``idle_seconds`` workers waiting at the
    end with nothing left to take while others finish. Shares are of workers x wall time.
    """

    name: str
    planned: int
    already_done: int
    workers: int
    ran: int = 0
    deals: int = 0
    errors: int = 0
    wall_seconds: float = 0.0
    agent_seconds: float = 0.0
    store_seconds: float = 0.0
    build_seconds: float = 0.0
    idle_seconds: float = 0.0
    finished: bool = False
    error_examples: list[str] = field(default_factory=list)

    @property
    def per_minute(self) -> float:
        return 60.0 * self.ran / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def shares(self) -> dict[str, float]:
        """Fractions of worker time: agents (backend), store, agent building, idle at the end,
        and the rest (orchestration: the runner, the queue, the progress bar)."""
        total = self.workers * self.wall_seconds
        if total <= 0:
            return {"agents": 0.0, "store": 0.0, "build": 0.0, "idle": 0.0, "orchestration": 0.0}
        agents, store, build, idle = (self.agent_seconds / total, self.store_seconds / total,
                                      self.build_seconds / total, self.idle_seconds / total)
        return {"agents": agents, "store": store, "build": build, "idle": idle,
                "orchestration": max(0.0, 1.0 - agents - store - build - idle)}


def _shown(value: Any) -> str:
    return f"{len(value)} items" if isinstance(value, list) and len(value) > 6 else repr(value)


async def open_tournament(store: Store, cfg: Config, plan: Plan, *,
                          retry_errors: bool = False) -> TournamentRow:
    """The tournament row for ``plan``: created, or found and checked to have the same set-up."""
    config, agents, models = snapshot(cfg, plan)
    row = await store.tournament(plan.name)
    if row is None:
        return await store.create_tournament(plan.name, config=config, agents=agents,
                                             models=models, seed=plan.seed, planned=plan.planned)
    if row.kind != "tournament":
        raise StoreError(f"{plan.name!r} in {store.path} is an imported reference run, not a "
                         f"tournament; pass --name with another name")
    changed = _differences(row.config.get("settings", {}), config["settings"])
    if changed:
        listed = "; ".join(changed[:6]) + ("; ..." if len(changed) > 6 else "")
        raise StoreError(
            f"tournament {plan.name!r} in {store.path} was started with a different set-up "
            f"({listed}). Resuming would mix two set-ups: pass --name with a new name to start "
            f"another tournament, or restore the old settings to finish this one")
    if retry_errors:
        removed = await store.delete_errors(row.id)
        if removed:
            log.info("%s: %d negotiation(s) that ended in an error will run again",
                     plan.name, removed)
    return row


async def run_tournament(
    cfg: Config,
    plan: Plan,
    store: Store,
    *,
    workers: int = 1,
    progress: bool = True,
    retry_errors: bool = False,
    factory: AgentFactory | None = None,
    on_stored: Callable[[NegotiationRecord], None] | None = None,
) -> RunStats:
    """Run every planned negotiation not yet in ``store``; return what happened.

    ``factory`` defaults to an AgentFactory over ``cfg`` (closed at the end). A failure that is
    not a negotiation's own (an agent that cannot be built, the database) stops the run; what
    was stored stays, and the same call resumes it.
    """
    from bot.agent_factory import AgentFactory

    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    row = await open_tournament(store, cfg, plan, retry_errors=retry_errors)
    done = await store.done_keys(row.id)
    todo = [m for m in plan.matches() if m.key not in done]
    already = plan.planned - len(todo)
    stats = RunStats(plan.name, plan.planned, already, workers=min(workers, max(1, len(todo))))
    own_factory = factory is None
    factory = factory or AgentFactory(cfg)
    t0 = time.perf_counter()
    try:
        if todo:
            await probe_models(factory, todo)
            await _run_matches(cfg, plan, store, row.id, todo, stats, factory,
                               progress=progress, on_stored=on_stored)
    finally:
        stats.wall_seconds = time.perf_counter() - t0
        if own_factory:
            await factory.aclose()
    if len(await store.done_keys(row.id)) >= plan.planned:
        if row.finished_at is None or todo:
            await store.finish_tournament(row.id)
        stats.finished = True
    return stats


async def probe_models(factory: AgentFactory, todo: Sequence[Match]) -> None:
    """Probe each model the negotiations to run use, once, before any of them starts: a dead
    backend stops the run here (ModelUnavailable) instead of filling the tournament with
    fallback play. The probe goes to the seat worker 0 gives the first agent on that model.
    A factory without ``probe`` (a test double building rule agents) has nothing to probe."""
    probe = getattr(factory, "probe", None)
    if probe is None:
        return
    seats = dict.fromkeys((name, role, f"w0/{name}/{role.value}") for m in todo
                          for name, role in ((m.pairing.buyer, Role.BUYER),
                                             (m.pairing.seller, Role.SELLER)))
    await probe(seats)


async def _run_matches(cfg: Config, plan: Plan, store: Store, tournament_id: int,
                       todo: list[Match], stats: RunStats, factory: AgentFactory, *, progress: bool,
                       on_stored: Callable[[NegotiationRecord], None] | None) -> None:
    from tqdm import tqdm

    from bot.negotiation.runner import run_negotiation

    queue: asyncio.Queue[Match] = asyncio.Queue()
    for match in todo:
        queue.put_nowait(match)
    bar = tqdm(total=plan.planned, initial=stats.already_done, desc=plan.name, unit="neg",
               disable=not progress, dynamic_ncols=True, mininterval=0.5, smoothing=0.1)

    # Set when the run stops (an error, Ctrl-C). Workers check it as well as being cancelled:
    # on Python 3.11, asyncio.wait_for (in the runner) swallows a cancellation that arrives as
    # the agent's turn completes, which with fast agents is nearly always.
    stopping = asyncio.Event()

    finished_at: list[float] = []

    async def worker(k: int) -> None:
        try:
            await work(k)
        finally:
            finished_at.append(time.perf_counter())

    async def work(k: int) -> None:
        agents: dict[tuple[str, Role], Agent] = {}
        repetition = None
        while not stopping.is_set():
            try:
                match = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if match.repetition != repetition:  # new seeds: rebuild on the same backend seats
                agents.clear()
                repetition = match.repetition
            seats = []
            for name, role in ((match.pairing.buyer, Role.BUYER),
                               (match.pairing.seller, Role.SELLER)):
                agent = agents.get((name, role))
                if agent is None:
                    base = cfg.agent(name).seed
                    t = time.perf_counter()
                    seed = None if base is None else base + repetition
                    agent = factory.build(name, role, seed=seed, seat=f"w{k}/{name}/{role.value}")
                    stats.build_seconds += time.perf_counter() - t
                    agents[(name, role)] = agent
                seats.append(agent)
            record = await run_negotiation(
                match.scenario, seats[0], seats[1], max_turns=plan.max_turns,
                first_mover=plan.first_mover, turn_timeout=plan.turn_timeout,
                max_model_failures=plan.max_model_failures)
            t = time.perf_counter()
            await store.save_negotiation(tournament_id, record.to_dict(),
                                         repetition=match.repetition)
            stats.store_seconds += time.perf_counter() - t
            stats.agent_seconds += sum(turn.seconds for turn in record.turns)
            stats.ran += 1
            stats.deals += record.deal_price is not None
            if record.error:
                stats.errors += 1
                if len(stats.error_examples) < 3:
                    stats.error_examples.append(
                        f"{match.pairing} on {match.scenario.id}: {record.error}")
            bar.set_postfix(deals=f"{stats.deals}/{stats.ran}", errors=stats.errors, refresh=False)
            bar.update(1)
            if on_stored is not None:
                on_stored(record)

    tasks = [asyncio.create_task(worker(k), name=f"{plan.name}/worker{k}")
             for k in range(stats.workers)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        stopping.set()
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        end = time.perf_counter()
        stats.idle_seconds += sum(end - t for t in finished_at)
        bar.close()
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise result
