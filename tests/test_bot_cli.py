"""`haggle bot` as a server owner runs it (subprocesses): --check, and the token's rules."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def haggle_bot(*args, env=None):
    environment = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "bot.cli", "bot", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=120, env=environment, check=False)


def test_check_prints_the_commands_as_json_without_connecting():
    proc = haggle_bot("--check")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["token_env"] == "DISCORD_TOKEN" and report["token_set"] is False
    assert "DISCORD_TOKEN is not set" in proc.stderr
    commands = {c["name"]: c for c in report["commands"]}
    assert set(commands) == {"haggle", "daily", "tournament", "leaderboard", "stats", "models"}
    haggle = {o["name"]: o for o in commands["haggle"]["options"]}
    assert haggle["role"]["choices"] == ["buyer", "seller"] and haggle["item"]["autocomplete"]
    tournament = {o["name"]: o for o in commands["tournament"]["options"]}
    assert set(tournament) == {"run", "status", "cancel", "report"}
    assert tournament["run"]["type"] == "subcommand" and commands["tournament"]["guild_only"]
    run = {o["name"]: o for o in tournament["run"]["options"]}
    assert run["agents"]["required"] and run["workers"]["min_value"] == 1
    assert all(c["description"] for c in report["commands"])
    assert report["scenario_sets"]["agreemate"] == 30
    assert all("file" in m or "error" in m or "url" in m for m in report["models"])


def test_the_token_is_read_from_the_environment_and_never_printed():
    secret = "MTIzNDU2Nzg5.fake-token-value.do-not-print"
    proc = haggle_bot("--check", env={"DISCORD_TOKEN": secret})
    assert proc.returncode == 0 and json.loads(proc.stdout)["token_set"] is True
    assert secret not in proc.stdout + proc.stderr


def test_clear_errors_without_a_token_or_with_misused_flags():
    proc = haggle_bot()
    assert proc.returncode == 2 and "set the environment variable DISCORD_TOKEN" in proc.stderr
    proc = haggle_bot("--sync")
    assert proc.returncode == 2 and "DISCORD_TOKEN" in proc.stderr
    proc = haggle_bot("--guild", "123")
    assert proc.returncode == 2 and "--guild goes with --sync" in proc.stderr
    assert "Traceback" not in proc.stderr
