"""Agents by name, as config.toml's [agents.NAME] tables describe them."""

from __future__ import annotations

import logging

from bot.config import AgentConfig, Config
from bot.errors import ConfigError
from bot.negotiation.agents import Agent, RuleAgent
from bot.negotiation.turns import Role

log = logging.getLogger(__name__)


class AgentFactory:
    """Builds agents and owns the model backends they use (close it when done)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    def check_seat(self, agent: AgentConfig, role: Role) -> None:
        if role.value not in agent.roles:
            raise ConfigError(f"agent {agent.name!r} is a {agent.role} agent and cannot play the "
                              f"{role.value}; pick an agent whose role is {role.value} or generalist")

    def build(self, name: str, role: Role | str, *, seed: int | None = None) -> Agent:
        role = Role.parse(role)
        agent = self.cfg.agent(name)
        self.check_seat(agent, role)
        if agent.kind == "rule":
            return RuleAgent(name, concession=agent.concession, accept_gap=agent.accept_gap,
                             chatter=agent.chatter, seed=agent.seed if seed is None else seed)
        raise ConfigError(f"agent {name!r}: kind {agent.kind!r} is not available in this build")

    async def aclose(self) -> None:
        return None
