from pathlib import Path

import pytest

from bot.config import load_config, parse_config
from bot.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path, text):
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_shipped_config_loads_and_names_the_agents():
    cfg = load_config(REPO / "config.toml")
    assert cfg.negotiation.max_turns == 15 and cfg.negotiation.seller_bottom_fraction == 0.7
    assert {"buyer", "seller", "rule", "rule-buyer", "rule-seller"} <= set(cfg.agents)
    assert cfg.agents["buyer"].kind == "llm" and cfg.agents["rule-seller"].roles == ("seller",)
    assert cfg.default_agent("seller") == "seller"
    assert "default" in cfg.models


def test_empty_config_gets_defaults(tmp_path):
    cfg = load_config(_write(tmp_path, ""))
    assert cfg.negotiation.max_turns == 15 and cfg.store.path == "haggle.db"
    assert cfg.resolve_path("x.db") == tmp_path / "x.db"


@pytest.mark.parametrize("text, key", [
    ("[negotiation]\nmax_turn = 15", "negotiation.max_turn: unknown key"),
    ("[negotiation]\nmax_turns = 1", "negotiation.max_turns: must be >= 2"),
    ("[negotiation]\nmax_turns = 'ten'", "negotiation.max_turns: expected an integer"),
    ("[negotiation]\nmax_turns = 12.5", "negotiation.max_turns: expected an integer"),
    ("[negotiation]\nseller_bottom_fraction = 0", "negotiation.seller_bottom_fraction: must be in (0, 2]"),
    ("[negotiation]\nbuyer_ceiling_fraction = 2.5", "negotiation.buyer_ceiling_fraction: must be in (0, 2]"),
    ("[negotiation]\nfirst_mover = 'both'", "negotiation.first_mover: must be one of"),
    ("[negotiation]\nturn_timeout_s = -1", "negotiation.turn_timeout_s"),
    ("[agents.x]\nkind = 'rule'\ntemperature = -1", "agents.x.temperature: must be >= 0"),
    ("[agents.x]\nkind = 'robot'", "agents.x.kind: must be one of"),
    ("[agents.x]\npick = 'best'", "agents.x.pick: must be one of 'likeliest', 'shortest', 'first'"),
    ("[agents.x]\nsentences = 2", "agents.x.sentences: must be 1 (one sentence) or left out"),
    ("[agents.x]\nsentences = true", "agents.x.sentences: expected an integer"),
    ("[agents.x]\ncot = 'yes'", "agents.x.cot: expected true or false"),
    ("[agents.x]\nmodel = 'missing'", "agents.x.model: no model named 'missing'"),
    ("[agents.x]\nkind = 'rule'\nconcession = 0", "agents.x.concession"),
    ("[agent.x]\nkind = 'rule'", "unknown section(s) [agent]"),
    ("[tournament]\nworkers = 0", "tournament.workers: must be >= 1"),
    ("[tournament]\nscenario_set = 'mars'", "tournament.scenario_set"),
    ("[training]\nlora_rank = 8", "training.lora_rank"),
    ("[bot]\ntoken = 'abc'", "bot.token"),
    ("[negotiation\nmax_turns = 3", "not valid TOML"),
])
def test_bad_values_fail_at_load_naming_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text))
    assert key in str(err.value)


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_unknown_agent_lookup_lists_the_known_ones():
    cfg = parse_config({"agents": {"a": {"kind": "rule"}}}, None)
    with pytest.raises(ConfigError, match="unknown agent 'b'; configured agents: a"):
        cfg.agent("b")


def test_configs_are_frozen():
    cfg = parse_config({}, None)
    with pytest.raises(AttributeError):
        cfg.negotiation.max_turns = 3  # type: ignore[misc]


def test_trained_vs_base_example_compares_sellers_that_differ_only_in_the_model():
    import dataclasses

    cfg = load_config(REPO / "examples" / "train_vs_base.toml")
    base, trained = cfg.agents["seller"], cfg.agents["seller-ft"]
    assert (base.model, trained.model) == ("default", "seller-ft")
    assert dataclasses.replace(base, name="seller-ft", model="seller-ft") == trained
    hybrid, hybrid_trained = cfg.agents["hybrid-seller"], cfg.agents["hybrid-seller-ft"]
    assert hybrid.policy == "hybrid"
    assert dataclasses.replace(hybrid, name="hybrid-seller-ft", model="seller-ft") == hybrid_trained
    trained_model = Path(cfg.models["seller-ft"].path).resolve()  # the folder, or its best file
    assert (REPO / "adapters" / "seller").resolve() in (trained_model, trained_model.parent)
    shipped = load_config(REPO / "config.toml")  # the same data as the repo's own config
    assert cfg.data == shipped.data
    assert cfg.resolve_path(cfg.store.path).parent.resolve() == (REPO / "runs").resolve()
