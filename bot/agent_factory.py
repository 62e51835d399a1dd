"""Agents by name, as config.toml's [agents.NAME] tables describe them."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable

from bot.config import AgentConfig, Config
from bot.errors import ConfigError, ModelError, ModelUnavailable
from bot.negotiation.agents import Agent, RuleAgent
from bot.negotiation.turns import Role

log = logging.getLogger(__name__)


class AgentFactory:
    """Builds agents and owns the model backends they use (``await aclose()`` when done).

    Every LLM agent built gets its own seat in the model pool, hence its own llama.cpp
    instance (so llama.cpp keeps that agent's prompt prefix), unless its model is configured
    ``shared = true``.
    """

    def __init__(self, cfg: Config, *, pool=None) -> None:
        self.cfg = cfg
        self._pool = pool
        self._seats = itertools.count()

    @property
    def pool(self):
        if self._pool is None:
            from bot.llm.pool import ModelPool

            self._pool = ModelPool(self.cfg.models)
        return self._pool

    def check_seat(self, agent: AgentConfig, role: Role) -> None:
        if role.value not in agent.roles:
            raise ConfigError(f"agent {agent.name!r} is a {agent.role} agent and cannot play the "
                              f"{role.value}; pick an agent whose role is {role.value} or generalist")

    def build(self, name: str, role: Role | str, *, seed: int | None = None, seat: str | None = None,
              reply_budget_s: float | None = None) -> Agent:
        """A fresh agent ``name`` for seat ``role``. ``seed`` overrides the configured seed;
        ``reply_budget_s``: the seconds from a turn's start within which its reply must come
        (LLMAgent: candidates not finished by then are left out; None = no limit)."""
        role = Role.parse(role)
        agent = self.cfg.agent(name)
        self.check_seat(agent, role)
        seed = agent.seed if seed is None else seed
        rule = RuleAgent(name if agent.kind == "rule" else f"{name}-fallback", concession=agent.concession,
                         accept_gap=agent.accept_gap, chatter=agent.chatter, seed=seed)
        if agent.kind == "rule":
            return rule
        from bot.llm.base import Sampling
        from bot.negotiation.llm_agent import LLMAgent

        backend = self.pool.backend(agent.model, seat or f"{name}/{role.value}/{next(self._seats)}")
        sampling = Sampling(temperature=agent.temperature, top_p=agent.top_p, top_k=agent.top_k,
                            repeat_penalty=agent.repeat_penalty, max_tokens=agent.max_tokens, seed=seed)
        policy = None
        if agent.policy == "hybrid":
            from bot.negotiation.policy import ConcessionPolicy

            # with reservation_spread 0 the limit is the published fraction: no deadline take
            policy = ConcessionPolicy(agent.personality, seed=seed,
                                      private_limit=self.cfg.negotiation.reservation_spread > 0)
        reader = None
        if agent.pick == "reader" or agent.reader_floor is not None:
            from bot.negotiation.line_reader import LineReader

            reader = LineReader.load()
        return LLMAgent(name, backend, sampling=sampling, personality=agent.personality, cot=agent.cot,
                        max_repairs=agent.max_repairs, fallback=rule,
                        policy=policy, candidates=agent.candidates,
                        pick=agent.pick, sentences=agent.sentences,
                        rephrase=agent.rephrase, reply_budget_s=reply_budget_s, reader=reader,
                        reader_floor=agent.reader_floor)

    async def probe(self, seats: Iterable[tuple[str, Role | str, str]]) -> list[str]:
        """Probe, once each, the models the agents of ``seats`` (agent name, role, seat) run on:
        a load for llama.cpp, a one-token call for an HTTP endpoint. Each model is probed on the
        backend of the first seat that uses it, the one that agent will get, so a load is not
        wasted. Returns the models probed; raises ModelUnavailable naming the first dead one
        and what to check."""
        probed: list[str] = []
        for name, role, seat in seats:
            agent = self.cfg.agent(name)
            if agent.kind != "llm" or agent.model in probed:
                continue
            probed.append(agent.model)
            spec = self.cfg.models[agent.model]
            backend = self.pool.backend(agent.model, seat)
            try:
                await backend.probe()
            except ModelError as exc:
                said = str(exc)
                said += " " if said.endswith((".", "?", "!")) else ". "
                raise ModelUnavailable(
                    f"model {agent.model!r} (agent {name!r}, {Role.parse(role).value}) failed its "
                    f"probe, so nothing was run: {said}{what_to_check(spec)}") from exc
            log.info("model %s answered its probe", agent.model)
        return probed

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()


def what_to_check(spec) -> str:
    """What to look at when model ``spec`` (a ModelSpec) does not answer."""
    if spec.backend == "openai":
        return (f"Check that the server at {spec.url} is running and serves the model "
                f"{spec.remote_model!r} (its /models lists it), or fix url / model in "
                f"[models.{spec.name}]; then rerun the same command")
    return (f"Check [models.{spec.name}] path = {spec.path!r}: the file must be a complete GGUF "
            f"this llama-cpp-python build can load (`haggle models` lists what it reads); "
            f"then rerun the same command")
