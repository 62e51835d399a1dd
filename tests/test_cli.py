"""The `haggle` command as a person runs it (subprocesses, piped stdin)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import shared_data_config

REPO = Path(__file__).resolve().parents[1]


def haggle(*args, stdin="", check=True, env=None):
    proc = subprocess.run([sys.executable, "-m", "bot.cli", *args], input=stdin, capture_output=True,
                          text=True, cwd=REPO, timeout=120, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"haggle {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def test_help_lists_the_commands():
    out = haggle("--help").stdout
    for command in ("play", "match", "models"):
        assert command in out


@pytest.mark.parametrize("scenario_set", ["craigslist-test", "agreemate"])
def test_piped_play_json_record(scenario_set, tmp_path):
    extra = []
    if scenario_set == "craigslist-test":
        config = shared_data_config(tmp_path, craigslist_test="craigslist_bargains/test.json")
        extra = ["--config", str(config)]
    proc = haggle("play", "--role", "buyer", "--agent", "rule", "--json", "--scenario-set", scenario_set,
                  *extra, stdin="hello\nwould you take 50?\n60\nok deal\n")
    record = json.loads(proc.stdout)
    sc = record["scenario"]
    assert {"id", "title", "listing_price", "buyer_target", "seller_target",
            "buyer_reservation", "seller_reservation"} <= set(sc)
    assert record["agents"] == {"buyer": "you", "seller": "rule"}
    assert record["outcome"] in ("deal", "abandoned")
    for turn in record["turns"]:
        assert {"role", "act", "price", "utterance", "prompt_tokens", "prompt_tokens_evaluated",
                "completion_tokens", "seconds", "repaired", "fallback"} <= set(turn)
        if turn["role"] == "seller" and turn["act"] == "accept":
            assert turn["price"] >= sc["seller_reservation"]
    if record["deal_price"] is not None:
        assert record["deal_price"] >= sc["seller_reservation"]
    assert "metrics" in record and record["metrics"]["dialogue_length"] == len(record["turns"])
    assert "Seller:" in proc.stderr  # the transcript goes to stderr with --json


def test_eof_ends_the_game_cleanly():
    proc = haggle("play", "--role", "seller", "--agent", "rule-buyer", "--scenario-set", "agreemate",
                  "--seed", "3", stdin="hi there\n")
    assert "No deal (abandoned)" in proc.stdout


def test_play_refuses_an_absurd_price():
    """$50,000 for a $200 item is a typo in the terminal too (the rule lives in the core)."""
    proc = haggle("play", "--role", "buyer", "--agent", "rule", "--json", "--scenario-set",
                  "agreemate", "--scenario", "e5cd53dc", "--seed", "0",
                  stdin="I will pay $50,000 for it\n")
    assert "$50,000 for something listed at $200? That looks like a typo" in proc.stderr
    record = json.loads(proc.stdout)
    assert record["scenario"]["listing_price"] == 200.0
    assert all(t["price"] != 50000.0 for t in record["turns"])
    assert not any(t["role"] == "buyer" for t in record["turns"])  # the typo made no move


def test_rule_match_prints_transcript_and_metrics():
    out = haggle("match", "--buyer", "rule-buyer", "--seller", "rule-seller", "--scenario-set",
                 "agreemate", "--seed", "1").stdout
    assert "Outcome:" in out and "fairness=" in out


def test_clear_errors_for_bad_input(tmp_path):
    bad = tmp_path / "config.toml"
    bad.write_text("[negotiation]\nmax_turns = 1\n")
    proc = haggle("match", "--config", str(bad), check=False)
    assert proc.returncode == 2 and "negotiation.max_turns: must be >= 2" in proc.stderr
    proc = haggle("play", "--agent", "nobody", "--scenario-set", "agreemate", check=False)
    assert proc.returncode == 2 and "unknown agent 'nobody'" in proc.stderr
    proc = haggle("play", "--agent", "rule-buyer", "--role", "buyer", "--scenario-set", "agreemate", check=False)
    assert proc.returncode == 2 and "cannot play the seller" in proc.stderr
    proc = haggle("match", "--scenario", "no-such-id", "--scenario-set", "agreemate",
                  "--buyer", "rule", "--seller", "rule", check=False)
    assert proc.returncode == 2 and "no scenario with id" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_defaults_need_nothing_beside_the_repo_and_missing_data_says_how_to_get_it():
    """The shipped scenarios are the default; a craigslist set with an empty data cache (the
    tests' cache is empty) is one line naming the command that fetches it."""
    out = haggle("match", "--buyer", "rule-buyer", "--seller", "rule-seller", "--seed", "2").stdout
    assert "Outcome:" in out
    proc = haggle("match", "--buyer", "rule-buyer", "--seller", "rule-seller", "--scenario-set",
                  "craigslist-test", check=False, env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "CraigslistBargains test split is not in the data cache" in proc.stderr
    assert "HF_HUB_OFFLINE=1: run `haggle data fetch craigslist:test` online" in proc.stderr


def test_an_interrupt_while_building_the_parser_exits_130(monkeypatch, capsys):
    """Ctrl-C during start-up (importing the command modules) is an interrupt like any other:
    status 130 and the message, not a traceback and death by SIGINT."""
    import bot.cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(bot.cli, "build_parser", interrupted)
    assert bot.cli.main(["tournament", "--help"]) == 130
    assert "haggle: interrupted" in capsys.readouterr().err


def test_a_ctrl_c_during_start_up_is_raised_after_the_imports(monkeypatch, capsys):
    """A real SIGINT while the parser is built is held until the imports are done, then
    raised in plain code: raised inside code that dataclasses or namedtuple exec(), CPython
    would kill the process with SIGINT at exit although main returned 130."""
    import os
    import signal

    import bot.cli

    real, reached = bot.cli.build_parser, []

    def interrupted_while_importing():
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10_000):  # Python runs signal handlers between bytecodes
            pass
        reached.append(True)  # not cut short
        return real()

    monkeypatch.setattr(bot.cli, "build_parser", interrupted_while_importing)
    # As a terminal starts it: Ctrl-C raises. (A test run started in the background, e.g.
    # `make test &`, inherits SIGINT ignored, and Python then keeps it ignored.)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert bot.cli.main(["tournament", "--help"]) == 130
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert reached == [True] and "haggle: interrupted" in capsys.readouterr().err


def test_as_the_program_haggle_leaves_sigint_at_the_default_for_python_s_shut_down():
    """After the work, an interrupt during Python's shut-down must end the process by SIGINT,
    not be raised in an atexit callback and ignored (exit 0); in-process callers keep theirs."""
    code = ("import signal, sys\nfrom bot.cli import main\n"
            "sys.argv = ['haggle', 'match', '--buyer', 'rule-buyer', '--seller', 'rule-seller',"
            " '--scenario-set', 'agreemate', '--seed', '1']\n"
            "rc = main()\nprint(rc, signal.getsignal(signal.SIGINT) is signal.SIG_DFL)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          timeout=120, check=False, preexec_fn=_sigint_as_a_terminal_gives_it)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 True"


def _sigint_as_a_terminal_gives_it() -> None:
    """In the child: SIGINT at the OS default, whatever this test run inherited."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
