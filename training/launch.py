"""Where this process stands in a multi-process launch (accelerate launch, torchrun).

Read from the launcher's environment variables, so the CLI can decide which stages each process
runs without importing torch or starting a process group.
"""

from __future__ import annotations

import os

from bot.errors import ConfigError


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not a whole number; it is "
                          "set by accelerate launch / torchrun, unset it for a plain run") from None


def launched_processes() -> int:
    """How many processes the launcher started for this job (1 in a plain run)."""
    return max(_env_int("WORLD_SIZE", 1), 1)


def is_main_process() -> bool:
    """True in a plain run and in rank 0 of a launched one: the process that writes files."""
    return _env_int("RANK", 0) == 0
