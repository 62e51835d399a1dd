"""Fold a LoRA adapter into its base: the merged model is a plain HF checkpoint directory.

transformers refuses ``save_pretrained`` on a model it loaded from a GGUF ("quantized with gguf
and is not serializable"), although the weights are ordinary float tensors by then. So the
merged model is written by hand: config.json without the gguf quantization_config, the state
dict as model.safetensors (lm_head left out when tied to the embeddings), the tokenizer, and
source.json naming the base so export can copy its GGUF metadata. The result loads with
``from_pretrained(merged_dir)`` like any checkpoint; it is written under a temp name and
renamed, so an interrupted merge leaves no directory that looks complete.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path

from bot.errors import ModelError
from training.modeling import Loaded, load_model

log = logging.getLogger(__name__)

SOURCE = "source.json"


def merge(base_ref: str | Path, adapter_dir: str | Path | None, out_dir: str | Path, *,
          device: str | None = "cpu") -> Path:
    """Load ``base_ref`` unquantized, merge the adapter (None: no adapter) and save to ``out_dir``.

    Merging runs on the CPU by default: it needs no speed, and fp32 keeps the sum W + BA exact
    before export rounds it once to F16.
    """
    from peft import PeftModel

    loaded = load_model(base_ref, device=device)
    model = loaded.model
    if adapter_dir is not None:
        adapter_dir = Path(adapter_dir)
        if not (adapter_dir / "adapter_config.json").is_file():
            raise ModelError(f"{adapter_dir} holds no LoRA adapter (adapter_config.json); "
                             "run `haggle train fit` first")
        model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    return save_merged(Loaded(model=model, tokenizer=loaded.tokenizer, ref=loaded.ref,
                              path=loaded.path, device=loaded.device), out_dir,
                       adapter_dir=adapter_dir)


def save_merged(loaded: Loaded, out_dir: str | Path, *, adapter_dir: Path | None = None) -> Path:
    """Write ``loaded.model`` as an HF checkpoint (config, safetensors, tokenizer, source.json)."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model = loaded.model
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the GGUF it came from; the weights are plain floats now
    config.save_pretrained(tmp)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    state = {name: t.detach().to("cpu").contiguous()
             for name, t in model.state_dict().items()
             if not (tied and name == "lm_head.weight")}
    try:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        loaded.tokenizer.save_pretrained(tmp)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelError(f"cannot write the merged model to {out_dir}: {exc} "
                         "(free disk space and run merge again)") from exc
    base_gguf = str(loaded.path) if loaded.path.is_file() else None
    (tmp / SOURCE).write_text(json.dumps({
        "base_ref": loaded.ref, "base_path": str(loaded.path), "base_gguf": base_gguf,
        "adapter": str(adapter_dir) if adapter_dir is not None else None,
        "dtype": str(next(iter(state.values())).dtype).removeprefix("torch."),
    }, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    log.info("merged model written to %s", out_dir)
    return out_dir


def read_source(merged_dir: str | Path) -> dict:
    """What ``merged_dir`` was made from (see save_merged)."""
    path = Path(merged_dir) / SOURCE
    if not path.is_file():
        raise ModelError(f"{merged_dir} is not a merged model (no {SOURCE}); "
                         "run `haggle train merge` first")
    return json.loads(path.read_text(encoding="utf-8"))


def load_merged(merged_dir: str | Path, *, device: str | None = "cpu"):
    """The merged model (fp32 on CPU) and tokenizer, for verification."""
    read_source(merged_dir)
    loaded = load_model(merged_dir, device=device)
    loaded.model.eval()
    return loaded


__all__ = ["load_merged", "merge", "read_source", "save_merged"]
