"""Ctrl-C at random moments: does `haggle tournament` always stop cleanly and resume exactly?

    PYTHONPATH=. .venv/bin/python bench/interrupts.py               # 200 interrupts (~8 min on 2 busy cores)
    PYTHONPATH=. .venv/bin/python bench/interrupts.py --runs 20 --seed 3

Each trial starts a rule-agent tournament (3 pairings x 10 AgreeMate scenarios = 30
negotiations, 2 workers, a fresh database) as a real subprocess with SIGINT at its default
disposition, and sends it SIGINT at a moment drawn uniformly from [0, 1.2 x the wall time of an
uninterrupted run] after the spawn: during interpreter start-up, config and scenario loading,
mid-run, while it finishes, or after it exited. It then counts:

- the exit status (130 is the contract; "-2" means the process died of SIGINT before or after
  haggle's own code ran, which a shell also reports as 130; 0 means the interrupt was lost);
- negotiations stored, and among them any with missing turns or a duplicated key;
- whether the same command run again exits 0 with the whole plan stored exactly once and the
  tournament marked finished.

Nothing is timed against a threshold: the output is the table of counts.
"""

from __future__ import annotations

import argparse
import collections
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
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
SCENARIOS = 10
PLANNED = 3 * SCENARIOS


def default_sigint() -> None:
    """Make the children start with SIGINT at its default disposition, whatever this process
    inherited: a background job of a non-interactive shell starts with SIGINT ignored, Python
    keeps an inherited SIG_IGN, and so would every child, which then never sees the interrupt.
    A handler installed here is reset to the default in a child at exec."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def command(folder: Path) -> list[str]:
    return [sys.executable, "-m", "bot.cli", "tournament", "--config", str(folder / "config.toml"),
            "--agents", "rule,rule-buyer,rule-seller", "--scenario-set", "agreemate",
            "--scenarios", str(SCENARIOS), "--workers", "2", "--db", str(folder / "t.db"),
            "--no-progress"]


def inspect(db: Path) -> dict[str, int | bool]:
    """Stored rows, duplicated keys, negotiations missing turns, finished flag, integrity."""
    if not db.exists():
        return {"stored": 0, "duplicates": 0, "partial": 0, "finished": False, "ok": True}
    with sqlite3.connect(db, timeout=10) as conn:
        try:
            total, distinct = conn.execute(
                "SELECT count(*), count(DISTINCT buyer || '|' || seller || '|' || scenario_id"
                " || '|' || repetition) FROM negotiations").fetchone()
        except sqlite3.OperationalError:  # the schema was not created yet
            return {"stored": 0, "duplicates": 0, "partial": 0, "finished": False, "ok": True}
        partial = conn.execute(
            "SELECT count(*) FROM negotiations AS n WHERE"
            " json_extract(n.metrics, '$.dialogue_length') !="
            " (SELECT count(*) FROM turns AS t WHERE t.negotiation_id = n.id)").fetchone()[0]
        row = conn.execute("SELECT finished_at FROM tournaments").fetchone()
        ok = conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return {"stored": total, "duplicates": total - distinct, "partial": partial,
            "finished": row is not None and row[0] is not None, "ok": ok}


PHASES = ("Python start-up (before haggle's main ran)", "inside haggle's main",
          "after the summary was printed")


def phase(r: dict[str, object]) -> str:
    """Where an interrupt landed, from what the process left behind: a summary on stdout means
    the run had finished its work; no output of haggle's and no haggle frame in a traceback
    means Python had not started haggle's code yet."""
    out, err = str(r["stdout"]), str(r["stderr"])
    if "negotiations stored in" in out:
        return PHASES[2]
    if "haggle:" not in err and "/bot/" not in err and r["rc"] != 130:
        return PHASES[0]
    return PHASES[1]


def uninterrupted(folder: Path) -> float:
    db = folder / "t.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    t0 = time.perf_counter()
    done = subprocess.run(command(folder), check=False, cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        sys.exit(f"the uninterrupted run failed (rc {done.returncode}):\n{done.stderr}")
    return time.perf_counter() - t0


def trial(folder: Path, delay: float, timeout: float) -> dict[str, object]:
    db = folder / "t.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    proc = subprocess.Popen(command(folder), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    exited_before = proc.poll() is not None
    if not exited_before:
        proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=timeout)
        hung = False
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        hung = True
    state = inspect(db)
    rerun = subprocess.run(command(folder), check=False, cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    after = inspect(db)
    complete = (rerun.returncode == 0 and after["stored"] == PLANNED and after["duplicates"] == 0
                and after["partial"] == 0 and after["finished"] and after["ok"]
                and f"{PLANNED}/{PLANNED} negotiations stored" in rerun.stdout)
    return {"delay": delay, "rc": proc.returncode, "hung": hung, "exited_before": exited_before,
            "stderr": err, "stdout": out, **state, "rerun_complete": complete,
            "rerun_stderr": rerun.stderr if not complete else ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="interrupts to send (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the moments (default 0)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds an interrupted run may take to exit before it counts as hung")
    args = parser.parse_args()
    default_sigint()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="haggle-interrupts-") as tmp:
        folder = Path(tmp)
        (folder / "config.toml").write_text(CONFIG)
        baseline = statistics.median(uninterrupted(folder) for _ in range(3))
        horizon = 1.2 * baseline
        print(f"plan: {PLANNED} negotiations (3 pairings x {SCENARIOS} scenarios, 2 workers); "
              f"an uninterrupted run takes {baseline:.2f} s (median of 3); interrupts drawn "
              f"uniformly in [0, {horizon:.2f}] s after the spawn; seed {args.seed}")
        started = time.perf_counter()
        results = [trial(folder, rng.uniform(0, horizon), args.timeout) for _ in range(args.runs)]
        wall = time.perf_counter() - started
    sent = [r for r in results if not r["exited_before"]]
    print(f"\n{len(results)} trials in {wall:.0f} s; SIGINT sent to {len(sent)} running processes "
          f"({len(results) - len(sent)} had already exited)")
    by_phase: dict[str, list[dict[str, object]]] = collections.defaultdict(list)
    for r in sent:
        by_phase[phase(r)].append(r)
    print("exit status by where the interrupt landed:")
    for name in PHASES:
        inside = by_phase.get(name, [])
        codes = collections.Counter(r["rc"] for r in inside)
        print(f"  {name:<48} {len(inside):>4}: "
              + (", ".join(f"{k} x{v}" for k, v in sorted(codes.items(), key=str)) or "-"))
    print(f"hung (no exit within {args.timeout:g} s): {sum(r['hung'] for r in results)}")
    print(f"negotiations missing turns: {sum(r['partial'] for r in results)}; duplicated keys: "
          f"{sum(r['duplicates'] for r in results)}; failed integrity checks: "
          f"{sum(not r['ok'] for r in results)}")
    print(f"reruns that completed the plan exactly: {sum(r['rerun_complete'] for r in results)}"
          f"/{len(results)}")
    odd = [r for r in sent if (phase(r) == PHASES[1] and r["rc"] != 130) or r["hung"]
           or not r["rerun_complete"]]
    for r in odd[:5]:
        tail = (r["stderr"] or "").strip().splitlines()[-3:]
        print(f"  e.g. rc {r['rc']} at {r['delay']:.3f} s, {r['stored']} stored: "
              + " | ".join(tail) + (f" | rerun: {r['rerun_stderr'].strip()[-300:]}"
                                    if r["rerun_stderr"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
