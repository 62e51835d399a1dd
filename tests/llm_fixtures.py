"""Helpers and fixtures shared by the tests/test_llm_*.py modules (import what you need)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

ACTS = ["offer", "counter-price", "accept", "reject", "inquire"]

# The shape of a negotiation reply (the lead's prompts define the real one).
REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "act": {"type": "string", "enum": ACTS},
        "price": {"type": ["number", "null"]},
        "utterance": {"type": "string", "maxLength": 200},
    },
    "required": ["act", "price", "utterance"],
}

SELLER_MESSAGES = [
    {"role": "system", "content": "You sell a used road bike listed at $200. Answer the buyer "
                                  "in JSON with act, price and utterance."},
    {"role": "user", "content": "Hi! Would you take $120 for the bike?"},
]


def check_reply(reply: Any) -> None:
    """Assert that a decoded reply follows REPLY_SCHEMA (jsonschema is not a dependency)."""
    assert isinstance(reply, dict), reply
    assert set(reply) == {"act", "price", "utterance"}, reply
    assert reply["act"] in ACTS, reply
    assert reply["price"] is None or (
        isinstance(reply["price"], (int, float)) and not isinstance(reply["price"], bool)), reply
    assert isinstance(reply["utterance"], str) and len(reply["utterance"]) <= 200, reply


def embedded_gguf() -> Path:
    """The embedded model's file; the test is skipped, saying how to install it, when absent."""
    from bot.errors import ModelError
    from bot.llm.models import embedded_model_path

    try:
        return embedded_model_path()
    except ModelError as exc:
        pytest.skip(str(exc))


def write_tiny_gguf(
    path: Path,
    *,
    architecture: str = "llama",
    file_type: int | None = None,
    context_length: int | None = None,
    chat_template: str | None = None,
) -> Path:
    """A few-hundred-byte GGUF with two F32 tensors (4x8 and 8): 40 parameters."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_block_count(1)
    writer.add_name("tiny test model")
    if file_type is not None:
        writer.add_file_type(file_type)
    if context_length is not None:
        writer.add_context_length(context_length)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fake_hf_cache(cache: Path, repo_id: str, filename: str, source: Path) -> Path:
    """Lay ``source`` out in huggingface-hub's cache format as repo_id@main/filename.

    models--OWNER--REPO/{blobs/<sha256>, snapshots/<commit>/<filename> -> blob, refs/main}
    """
    import hashlib

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    blob = repo_dir / "blobs" / hashlib.sha256(str(source).encode()).hexdigest()
    blob.parent.mkdir(parents=True)
    blob.symlink_to(source)
    snapshot = repo_dir / "snapshots" / commit / filename
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(blob)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    return snapshot
