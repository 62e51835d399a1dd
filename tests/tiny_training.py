"""What the training tests share: a tiny llama (GGUF + HF checkpoint) and small chat examples.

A module fixture calls ``make_tiny`` once: it converts the tiny GGUF into an HF checkpoint, which
tests then load in well under a second (reading a GGUF's tokenizer arrays takes seconds each time).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

DIALOGUE = [
    {"role": "system", "content": "You sell a lamp listed at $40."},
    {"role": "user", "content": "Would you take $20?"},
    {"role": "assistant", "content": "I can do $35."},
    {"role": "user", "content": "$30?"},
    {"role": "assistant", "content": "Deal at $32."},
]


def make_tiny(root: Path) -> SimpleNamespace:
    """The tiny llama in ``root``: ``gguf`` (file), ``hf`` (checkpoint dir) and ``tokenizer``."""
    from training.merge import save_merged
    from training.modeling import load_model
    from training.tiny import write_tiny_llama_gguf

    gguf_path = write_tiny_llama_gguf(root / "tiny.gguf")
    loaded = load_model(gguf_path)
    hf_dir = save_merged(loaded, root / "hf")
    return SimpleNamespace(gguf=gguf_path, hf=hf_dir, tokenizer=loaded.tokenizer)


def write_examples(path: Path, n: int) -> Path:
    """``n`` copies of DIALOGUE (the first reply's price differs) as chat-example JSON lines."""
    rows = []
    for i in range(n):
        msgs = [dict(m) for m in DIALOGUE]
        msgs[2]["content"] = f"I can do ${35 + i}."
        rows.append(json.dumps({"messages": msgs}) + "\n")
    path.write_text("".join(rows), encoding="utf-8")
    return path
