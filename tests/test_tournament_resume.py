"""A tournament killed mid-run (SIGKILL, or Ctrl-C) and rerun ends with exactly the planned
negotiations: none lost, none duplicated, every one with all its turns.

The tournament runs as a real `haggle tournament` subprocess with a test-only config of rule
agents. Rule agents finish a negotiation in about a millisecond, so the plan is made large
enough (3 pairings x the 30 shipped AgreeMate scenarios x 16 repetitions = 1,440 negotiations,
a few seconds) to be caught mid-run: the test watches the database and kills the process once
some negotiations are stored. No sleep or hook in the product code is involved.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REPETITIONS = 16  # a run long enough that the signal lands mid-run on a busy machine too
PLANNED = 3 * 30 * REPETITIONS
CONFIG = """
[agents.rule]
kind = "rule"
role = "generalist"
[agents.rule-buyer]
kind = "rule"
role = "buyer"
concession = 0.2
[agents.rule-seller]
kind = "rule"
role = "seller"
concession = 0.3
"""


def _command(tmp_path: Path) -> list[str]:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    return [sys.executable, "-m", "bot.cli", "tournament", "--config", str(config),
            "--agents", "rule,rule-buyer,rule-seller", "--scenario-set", "agreemate",
            "--repetitions", str(REPETITIONS), "--workers", "2", "--db", str(tmp_path / "t.db"),
            "--no-progress"]


def _stored(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM negotiations").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def _start_and_stop(tmp_path: Path, sig: int) -> tuple[subprocess.Popen, int]:
    """Start the tournament, wait until it has stored some negotiations, send ``sig``."""
    db = tmp_path / "t.db"
    proc = subprocess.Popen(_command(tmp_path), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _stored(db) < 40:
        if proc.poll() is not None:
            pytest.fail(f"the tournament ended (rc {proc.returncode}) before it could be "
                        f"interrupted: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the tournament stored nothing within 60 s")
        time.sleep(0.005)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    return proc, _stored(db)


def _snapshot(db: Path) -> dict[tuple, tuple]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT buyer, seller, scenario_id, repetition, id, outcome,"
                            " deal_price, metrics FROM negotiations").fetchall()
    return {r[:4]: r[4:] for r in rows}


def _check_complete(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT buyer || '|' || seller || '|' || scenario_id || '|'"
            " || repetition) FROM negotiations").fetchone()
        assert total == distinct == PLANNED
        incomplete = conn.execute(
            "SELECT count(*) FROM negotiations AS n WHERE"
            " json_extract(n.metrics, '$.dialogue_length') !="
            " (SELECT count(*) FROM turns AS t WHERE t.negotiation_id = n.id)").fetchone()[0]
        assert incomplete == 0
        planned, finished = conn.execute("SELECT planned, finished_at FROM tournaments").fetchone()
        assert planned == PLANNED and finished is not None


def _rerun(tmp_path: Path, before: int) -> None:
    done = subprocess.run(_command(tmp_path), cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{PLANNED}/{PLANNED} negotiations stored" in done.stdout
    assert f"({PLANNED - before} run now, {before} before" in done.stdout


def test_sigkill_mid_run_then_rerun_completes_exactly_the_plan(tmp_path):
    db = tmp_path / "t.db"
    proc, stored = _start_and_stop(tmp_path, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert 40 <= stored < PLANNED, "the kill must land mid-run"
    before = _snapshot(db)
    with sqlite3.connect(db) as conn:  # what the kill left is a healthy database
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT finished_at FROM tournaments").fetchone()[0] is None

    _rerun(tmp_path, len(before))
    _check_complete(db)
    after = _snapshot(db)
    assert {k: after[k] for k in before} == before  # nothing stored before was touched


def test_ctrl_c_mid_run_stops_cleanly_and_the_rerun_finishes(tmp_path):
    db = tmp_path / "t.db"
    proc, stored = _start_and_stop(tmp_path, signal.SIGINT)
    assert proc.returncode == 130
    err = proc.stderr.read()
    assert "interrupted" in err and "Rerun the same command" in err
    assert 40 <= stored < PLANNED
    _rerun(tmp_path, stored)
    _check_complete(db)
