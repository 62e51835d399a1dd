"""bench/narration_quality.py: a variant's adapter is checked before any game is played, so a
mistyped path stops the bench instead of turning the variant into fallback templates."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import narration_quality as nq  # noqa: E402

from bot.config import load_config  # noqa: E402


def test_a_missing_variant_adapter_stops_the_bench_with_the_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(ROOT / "config.toml")
    with pytest.raises(SystemExit, match=r"lora=runs/none-such: lora adapter .*runs/none-such does not exist"):
        nq.variant_config(cfg, {"lora": "runs/none-such"})


def test_a_variant_adapter_is_a_path_from_the_current_directory(monkeypatch):
    monkeypatch.chdir(ROOT / "adapters")
    cfg = load_config(ROOT / "config.toml")
    out = nq.variant_config(cfg, {"lora": "narrator"})
    assert {m.lora for m in out.models.values()} == {str(ROOT / "adapters" / "narrator")}
    none = nq.variant_config(cfg, {"lora": "none"})
    assert all(m.lora is None for m in none.models.values())


def test_a_variant_floor_sets_every_llm_agent_s_reader_floor_and_a_bad_one_stops_the_bench():
    cfg = load_config(ROOT / "config.toml")
    out = nq.variant_config(cfg, {"floor": "0.5"})
    assert {a.reader_floor for a in out.agents.values() if a.kind == "llm"} == {0.5}
    assert all(a.reader_floor is None for a in nq.variant_config(cfg, {"floor": "none"}).agents.values())
    with pytest.raises(SystemExit, match=r"floor=1.5: a chance in \(0, 1\)"):
        nq.variant_config(cfg, {"floor": "1.5"})
