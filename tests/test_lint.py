"""The tree stays clean under the project's ruff rules (pyproject.toml: E, F, I, B, UP)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO


def test_ruff_finds_nothing():
    if shutil.which("ruff") is None and not (REPO / ".venv" / "bin" / "ruff").exists():
        pytest.skip("ruff is not installed (the dev extra installs it)")
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "bot", "training", "tests", "bench"],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
