"""Loading a llama-family base model into transformers, from a GGUF file or an HF checkpoint.

transformers reads a GGUF directly (``from_pretrained(dir, gguf_file=name)``), dequantizing every
tensor to float, so the same quantized file the bot serves is the base we fine-tune; nothing
has to be downloaded. Only the llama architecture is accepted because export writes llama.cpp's
llama tensor layout (names, Q/K rotary permutation); anything else fails here, before minutes
of training, with a message that says so.

Device and precision: fp32 on CPU (bf16 matmuls are slow there and fp32 keeps the merged
weights exact), bf16 on CUDA GPUs that compute in it natively (fp32 on older ones; see
``pick_device``). 4-bit QLoRA needs CUDA, bitsandbytes and an HF checkpoint base.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from bot.errors import ConfigError, ModelError
from bot.hub import is_hub_ref
from bot.llm.models import EMBEDDED, resolve_model

log = logging.getLogger(__name__)

LLAMA_MODEL_TYPES = ("llama", "mistral")  # mistral checkpoints share llama's tensor layout


@dataclass
class Loaded:
    """A model ready for training or inference, with where it came from."""

    model: torch.nn.Module
    tokenizer: object
    ref: str  # the reference as given ("embedded", a path, hf://...)
    path: Path  # the GGUF file or the HF checkpoint directory
    device: torch.device


def resolve_base(ref: str | Path) -> Path:
    """A local GGUF file or HF checkpoint dir for a base reference.

    GGUF references (a path, hf://OWNER/REPO/FILE.gguf, "embedded") resolve as the bot's model
    references do; a directory is taken as a Hugging Face checkpoint.
    """
    if not is_hub_ref(str(ref)) and str(ref).strip() != EMBEDDED and Path(ref).expanduser().is_dir():
        return Path(ref).expanduser()
    try:
        return resolve_model(ref)
    except ModelError as exc:
        raise ModelError(f"base model: {exc} (training also takes a Hugging Face checkpoint "
                         "directory)") from exc


def check_llama_family(config, path: Path) -> None:
    """Refuse anything export cannot write back as a llama GGUF, before loading its weights."""
    if config.model_type not in LLAMA_MODEL_TYPES:
        raise ModelError(f"{path}: model type {config.model_type!r} is not supported; training "
                         f"exports llama-family models only ({', '.join(LLAMA_MODEL_TYPES)}; "
                         "Llama, SmolLM2 and Mistral GGUFs are 'llama')")


BF16_MIN_CAPABILITY = (8, 0)  # Ampere: the first NVIDIA GPUs with bf16 tensor cores


def pick_device(device: str | None = None) -> tuple[torch.device, torch.dtype]:
    """The device to train on and its dtype: CUDA when present, else CPU with fp32.

    On CUDA the base is loaded in bf16 where the GPU computes in it natively (compute capability
    8.0 and up: A100, H100, RTX 30xx and later); older GPUs (V100, T4) get fp32, since torch only
    emulates bf16 there and fp16 without loss scaling is not stable for training. The LoRA
    weights themselves stay fp32 either way (peft's autocast_adapter_dtype).
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no CUDA GPU")
    if dev.type != "cuda":
        return dev, torch.float32
    native_bf16 = torch.cuda.get_device_capability(dev) >= BF16_MIN_CAPABILITY
    return dev, (torch.bfloat16 if native_bf16 else torch.float32)


def _from_pretrained_args(path: Path) -> tuple[str, dict]:
    if path.is_file():
        return str(path.parent), {"gguf_file": path.name}
    return str(path), {}


def load_tokenizer(path: Path):
    """The tokenizer of a GGUF (converted to a fast tokenizer by transformers) or checkpoint."""
    from transformers import AutoTokenizer

    where, extra = _from_pretrained_args(path)
    tokenizer = AutoTokenizer.from_pretrained(where, **extra)
    if not tokenizer.is_fast:
        raise ModelError(f"{path}: the tokenizer is not a fast tokenizer; the assistant-only loss "
                         "mask needs character offsets")
    if tokenizer.chat_template is None:
        raise ModelError(f"{path} has no chat template; use an instruct/chat model as the base")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(ref: str | Path, *, device: str | None = None,
               load_in_4bit: bool = False) -> Loaded:
    """Load a llama-family base (GGUF or HF checkpoint) and its tokenizer for training.

    ``load_in_4bit`` loads the base in NF4 through bitsandbytes (QLoRA); it needs CUDA, the
    bitsandbytes package and an HF checkpoint directory (transformers dequantizes GGUFs to float
    and cannot re-quantize them on load).
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    path = resolve_base(ref)
    dev, dtype = pick_device(device)
    where, extra = _from_pretrained_args(path)
    try:
        # Parsed once and handed on: reading a GGUF's metadata takes seconds (tokenizer arrays).
        config = AutoConfig.from_pretrained(where, **extra)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not a model transformers can read ({exc}); give a llama-"
                         "family .gguf file or Hugging Face checkpoint directory") from exc
    check_llama_family(config, path)
    if load_in_4bit:
        if dev.type != "cuda":
            raise ConfigError("training.load_in_4bit = true needs a CUDA GPU; set it to false on CPU")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError("training.load_in_4bit = true needs bitsandbytes: "
                              "pip install bitsandbytes (or set it to false)")
        if path.is_file():
            raise ConfigError("training.load_in_4bit = true needs an HF checkpoint base, not a "
                              "GGUF; set it to false or point training.base at a checkpoint dir")
        from transformers import BitsAndBytesConfig

        extra["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=True)
        extra["device_map"] = {"": dev}  # this process's GPU (one per process when launched)
    log.info("loading %s (%s) on %s as %s", ref, path, dev, dtype)
    try:
        model = AutoModelForCausalLM.from_pretrained(where, config=config, dtype=dtype, **extra)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load {path} with transformers: {exc}") from exc
    if not load_in_4bit:
        model.to(dev)
    return Loaded(model=model, tokenizer=load_tokenizer(path), ref=str(ref), path=path, device=dev)
