"""A tiny random llama GGUF with a real tokenizer, for tests and benchmarks of the pipeline.

Two layers of width 64 train, merge, export and run in llama.cpp in seconds, yet exercise
everything a real model does: grouped-query attention (4 heads, 2 KV heads) so the Q/K rotary
permutations differ, tied or untied output embeddings, and the real SmolLM2 tokenizer and chat
template (copied from the embedded model's GGUF), so chat rendering and the assistant-only mask
behave as in production. Weights are random: the model says nothing sensible, but every export
step is checked bit for bit by top-1 agreement. Written in F32 with the `gguf` package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tiny_llama_gguf(path: str | Path, *, tokenizer_gguf: str | Path | None = None,
                          n_layers: int = 2, hidden: int = 64, n_head: int = 4, n_head_kv: int = 2,
                          ffn: int = 128, context: int = 512, tied: bool = True,
                          seed: int = 0) -> Path:
    """Write the tiny model to ``path``; the tokenizer comes from ``tokenizer_gguf`` (default:
    the embedded SmolLM2 GGUF)."""
    import gguf

    from bot.llm.models import embedded_model_path

    path = Path(path)
    source = gguf.GGUFReader(tokenizer_gguf or embedded_model_path())
    n_vocab = len(source.get_field("tokenizer.ggml.tokens").contents())
    rng = np.random.default_rng(seed)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama-test")
    writer.add_block_count(n_layers)
    writer.add_context_length(context)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(hidden // n_head)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    for field in source.fields.values():
        if field.name.startswith("tokenizer."):
            vtype = field.types[0]
            sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)

    def matrix(rows: int, cols: int, scale: float | None = None) -> np.ndarray:
        std = scale if scale is not None else cols ** -0.5
        return (rng.standard_normal((rows, cols)) * std).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    head_dim = hidden // n_head
    # Embeddings of std 0.5 give logits of std ~4: a clear top-1, so agreement is meaningful.
    writer.add_tensor("token_embd.weight", matrix(n_vocab, hidden, 0.5))
    writer.add_tensor("output_norm.weight", norm(hidden))
    if not tied:
        writer.add_tensor("output.weight", matrix(n_vocab, hidden, 0.5))
    for i in range(n_layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", norm(hidden))
        writer.add_tensor(f"blk.{i}.attn_q.weight", matrix(n_head * head_dim, hidden))
        writer.add_tensor(f"blk.{i}.attn_k.weight", matrix(n_head_kv * head_dim, hidden))
        writer.add_tensor(f"blk.{i}.attn_v.weight", matrix(n_head_kv * head_dim, hidden))
        writer.add_tensor(f"blk.{i}.attn_output.weight", matrix(hidden, n_head * head_dim))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", norm(hidden))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", matrix(ffn, hidden))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", matrix(ffn, hidden))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", matrix(hidden, ffn))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
