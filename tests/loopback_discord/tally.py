"""What every loopback Discord of a test run saw: the summary printed at the end of pytest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Tally:
    worlds: int = 0
    requests: int = 0
    interactions: int = 0
    schema_violations: list[str] = field(default_factory=list)
    rule_violations: list[str] = field(default_factory=list)
    private_shown_publicly: list[str] = field(default_factory=list)
    expected_refusals: int = 0
    outside_connections: list[str] = field(default_factory=list)

    def add(self, discord: Any, *, test: str) -> None:
        self.worlds += 1
        self.requests += len(discord.requests)
        self.interactions += len(discord.interactions)
        self.schema_violations += [f"{test}: {p}" for p in discord.schema_problems]
        self.rule_violations += [f"{test}: {r}" for r in discord.unexpected_errors]
        self.private_shown_publicly += [f"{test}: {p}" for p in discord.private_shown_publicly
                                        if not discord.leaks_expected]
        self.expected_refusals += sum(1 for r in discord.errors if r.expected)
        self.outside_connections += [f"{test}: {a}"
                                     for a in discord.outside_connections]

    def lines(self) -> list[str]:
        out = [(f"loopback Discord: {self.worlds} worlds, {self.requests} HTTP requests, "
                f"{self.interactions} interactions, {self.expected_refusals} refusals the tests "
                f"provoked on purpose"),
               (f"{len(self.schema_violations)} schema violations, {len(self.rule_violations)} "
                f"rule violations, {len(self.private_shown_publicly)} private replies shown "
                f"publicly, {len(self.outside_connections)} connections beyond 127.0.0.1")]
        for item in (self.schema_violations + self.rule_violations
                     + self.private_shown_publicly + self.outside_connections)[:20]:
            out.append(f"  {item}")
        return out


TALLY = Tally()
