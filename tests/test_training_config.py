"""The [training] table: defaults, and errors that name the offending key."""

import importlib.util

import pytest

from bot.errors import ConfigError
from training.config import QUANT_TYPES, TrainingConfig


def test_empty_table_gives_the_paper_defaults():
    cfg = TrainingConfig.from_table({})
    assert cfg == TrainingConfig()
    assert (cfg.lora_r, cfg.lora_alpha) == (32, 16)
    assert cfg.target_modules == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert cfg.quant_types == ("Q4_K_M", "Q8_0")


def test_values_are_taken_and_lists_become_tuples():
    cfg = TrainingConfig.from_table({"lora_r": 8, "weight_decay": 1, "lora_dropout": 0,
                                     "quant_types": ["Q8_0"], "target_modules": ["q_proj"],
                                     "load_in_4bit": False, "base": "model.gguf"})
    assert cfg.lora_r == 8 and cfg.weight_decay == 1.0
    assert cfg.lora_dropout == 0.0 and isinstance(cfg.lora_dropout, float)
    assert cfg.quant_types == ("Q8_0",) and cfg.target_modules == ("q_proj",)
    assert cfg.to_dict()["quant_types"] == ["Q8_0"]


def test_learning_rate_of_one_is_out_of_range():
    with pytest.raises(ConfigError, match=r"training\.learning_rate"):
        TrainingConfig.from_table({"learning_rate": 1})


def test_unknown_key_is_named_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"training\.lora_rank") as err:
        TrainingConfig.from_table({"lora_rank": 16})
    assert "lora_r" in str(err.value)


@pytest.mark.parametrize("key,value", [
    ("lora_r", "32"), ("lora_r", True), ("lora_r", 0), ("batch_size", 2.5),
    ("lora_dropout", 1.0), ("lora_dropout", "0.1"), ("max_seq_len", 8),
    ("target_modules", []), ("target_modules", "q_proj"), ("quant_types", ["Q9_X"]),
    ("quant_types", ["Q8_0", "Q8_0"]), ("quant_types", ["F16"]), ("load_in_4bit", "yes"),
    ("verify_min_agreement_f16", 1.5), ("eval_fraction", 1.0), ("base", ""), ("seed", -1),
])
def test_bad_values_name_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"training\.{key}"):
        TrainingConfig.from_table({key: value})


def test_thresholds_by_file_type():
    cfg = TrainingConfig(verify_min_agreement_f16=0.99, verify_min_agreement_quantized=0.5)
    assert cfg.min_agreement("F16") == 0.99
    assert cfg.min_agreement("Q4_K_M") == 0.5


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python")
def test_every_quant_type_is_a_llama_cpp_file_type():
    import llama_cpp

    missing = [q for q in QUANT_TYPES if not hasattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{q}")]
    assert missing == []
