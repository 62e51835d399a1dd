"""Personalities: how an agent bargains (prompt-level for LLM agents, concession speed for the
rule agent). One type, spelled here once; every front end, config table and report uses it.
"""

from __future__ import annotations

from typing import Literal, get_args

from bot.errors import TurnError

Personality = Literal["aggressive", "fair", "passive"]
PERSONALITIES: tuple[Personality, ...] = get_args(Personality)
DEFAULT_PERSONALITY: Personality = "fair"
# AgreeMate's runs without a personality prompt; reports list it after the three.
NO_PERSONALITY = "default"
PERSONALITY_ORDER: tuple[str, ...] = (*PERSONALITIES, NO_PERSONALITY)
# The rule agent has no prompt: a personality chosen for it scales how fast it concedes.
RULE_CONCESSION_FACTOR: dict[Personality, float] = {"aggressive": 0.5, "fair": 1.0, "passive": 1.6}


def check_personality(name: str) -> Personality:
    """``name`` as a Personality, or a TurnError listing the ones there are."""
    if name not in PERSONALITIES:
        raise TurnError(f"unknown personality {name!r}; use one of {', '.join(PERSONALITIES)}")
    return name  # type: ignore[return-value]


def personality_rank(name: object) -> int:
    """Sort key: aggressive, fair, passive, default, then anything else."""
    return PERSONALITY_ORDER.index(name) if name in PERSONALITY_ORDER else len(PERSONALITY_ORDER)
