"""Check each exported GGUF against the merged transformers model it came from.

The check is top-1 next-token agreement: the same token ids go through the merged model
(fp32, transformers) and through llama.cpp on the GGUF (``logits_all=True``), and at every
position the argmax of the two logit rows is compared. A wrong tensor name, a missed rotary
permutation or a broken tokenizer field drives agreement to chance; F16 rounding leaves it near
1.0; quantization lowers it by an amount that depends on the type. Every file gets a verdict; a
file below its threshold is kept on disk and marked failed (in the verdict and the manifest),
so it can be inspected but not mistaken for a good one.

llama.cpp's own tokenization of each prompt is compared with the transformers tokenizer too
(reported, not judged): the bot serves through llama.cpp's tokenizer.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bot.errors import DataError
from training.examples import read_chat_jsonl, render

log = logging.getLogger(__name__)

Prompt = str | Sequence[dict]  # raw text, or chat messages rendered with the template

# Used when no held-out examples are given: plain text and one negotiation-shaped chat.
DEFAULT_PROMPTS: tuple[Prompt, ...] = (
    "The capital of France is",
    "A used bicycle in good condition usually sells for about",
    [{"role": "system", "content": "You are selling a used road bike listed at $300."},
     {"role": "user", "content": "Hi! Is the bike still available? Would you take $200?"},
     {"role": "assistant", "content": "It is. $200 is too low; I could do $280."},
     {"role": "user", "content": "How about $240 and I pick it up today?"}],
)


@dataclass
class Verdict:
    file: str
    file_type: str
    positions: int
    agreed: int
    agreement: float
    min_agreement: float
    passed: bool
    tokenizer_matches: int = 0  # prompts llama.cpp tokenizes exactly as transformers does
    prompts: int = 0
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def prompts_from_jsonl(path: str | Path, n: int) -> list[Prompt]:
    """The first ``n`` chat examples of a held-out JSONL file, as verification prompts."""
    return list(read_chat_jsonl(path)[:n])


def prompt_ids(tokenizer, prompt: Prompt, max_tokens: int) -> tuple[str, list[int]]:
    """The text and token ids of one prompt (chat: rendered; the template carries any BOS)."""
    if isinstance(prompt, str):
        text = prompt
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    else:
        text = render(tokenizer, list(prompt), generation_prompt=prompt[-1]["role"] != "assistant")
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return text, list(ids)[:max_tokens]


@torch.no_grad()
def reference_top1(model, ids: Sequence[int]) -> list[int]:
    logits = model(input_ids=torch.tensor([list(ids)], device=model.device)).logits[0]
    return logits.argmax(-1).tolist()


def gguf_top1(llm, ids: Sequence[int]) -> list[int]:
    llm.reset()
    llm.eval(list(ids))
    return llm.scores[: len(ids)].argmax(-1).tolist()


def verify_files(merged_dir: str | Path, files: Sequence[tuple[str | Path, str]], *,
                 min_agreement: Callable[[str], float], prompts: Sequence[Prompt] | None = None,
                 max_tokens: int = 256) -> list[Verdict]:
    """A verdict for each ``(gguf_path, file_type)`` against the merged model in ``merged_dir``."""
    from llama_cpp import Llama

    from training.merge import load_merged

    loaded = load_merged(merged_dir)
    tok, model = loaded.tokenizer, loaded.model
    encoded = [prompt_ids(tok, p, max_tokens) for p in (prompts or DEFAULT_PROMPTS)]
    encoded = [(text, ids) for text, ids in encoded if len(ids) >= 2]
    if not encoded:
        raise DataError("no verification prompt has two tokens or more; give longer prompts")
    reference = [reference_top1(model, ids) for _, ids in encoded]
    n_ctx = max(len(ids) for _, ids in encoded) + 16

    verdicts = []
    for path, file_type in files:
        threshold = min_agreement(file_type)
        try:
            llm = Llama(model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, logits_all=True,
                        n_threads=os.cpu_count() or 1, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            verdicts.append(Verdict(str(path), file_type, 0, 0, 0.0, threshold, False,
                                    prompts=len(encoded), error=f"llama.cpp cannot load it: {exc}"))
            continue
        agreed = positions = tok_matches = 0
        try:
            for (text, ids), ref in zip(encoded, reference, strict=False):
                got = gguf_top1(llm, ids)
                agreed += sum(a == b for a, b in zip(got, ref, strict=False))
                positions += len(ids)
                plain = tok(text, add_special_tokens=False)["input_ids"][:max_tokens]
                cpp_ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
                tok_matches += list(cpp_ids[:max_tokens]) == list(plain)
        finally:
            llm.close()
        agreement = agreed / positions if positions else 0.0
        verdicts.append(Verdict(str(path), file_type, positions, agreed, round(agreement, 4),
                                threshold, agreement >= threshold, int(tok_matches), len(encoded)))
        log.info("%s: top-1 agreement %d/%d = %.3f (%s)", path, agreed, positions, agreement,
                 "pass" if agreement >= threshold else "FAIL")
    return verdicts

