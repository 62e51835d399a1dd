"""Chat backends that run the models: llama.cpp in process, OpenAI-compatible HTTP, fakes.

Importing this package is cheap: llama_cpp and aiohttp load only when a backend of that kind
is made (``make_backend``) or its module is imported.
"""

from bot.errors import ContextOverflow, ModelTimeout
from bot.llm.base import ChatBackend, ChatResult, Message, Sampling
from bot.llm.models import GGUFInfo, ModelSpec, inspect_gguf, resolve_model
from bot.llm.pool import ModelPool, make_backend

__all__ = [
    "ChatBackend", "ChatResult", "ContextOverflow", "GGUFInfo", "Message", "ModelPool",
    "ModelSpec", "ModelTimeout", "Sampling", "inspect_gguf", "make_backend", "resolve_model",
]
