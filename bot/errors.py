"""The project's exception hierarchy.

Every error a user can cause carries a message that says what to do about it. Pure module:
the negotiation core imports it.
"""


class HaggleError(Exception):
    """Base class of every error haggle raises on purpose."""


class ConfigError(HaggleError):
    """A config file or value is wrong; the message names the key."""


class ScenarioError(HaggleError, ValueError):
    """A scenario makes no sense (non-positive listing price, impossible targets)."""


class TurnError(HaggleError, ValueError):
    """A turn is malformed: unknown act, missing or impossible price."""


class DataError(HaggleError):
    """A dataset file is missing or malformed."""


class ModelError(HaggleError):
    """A model file is missing, corrupt or unsupported, or a backend failed."""


class ModelUnavailable(ModelError):
    """A model's backend failed its probe before a run (it cannot load, nothing answers at its
    url): the run does not start. The message names the model and what to check."""


class StoreError(HaggleError):
    """The database cannot be opened or written."""


class ModelTimeout(ModelError):
    """A model call ran past its timeout. The backend stays usable for the next call."""

    def __init__(self, message: str, *, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


class ContextOverflow(ModelError):
    """The prompt plus the reply budget does not fit the model's context window.

    ``prompt_tokens + max_tokens > n_ctx``: drop old turns (or lower max_tokens) and retry,
    or configure a larger ``n_ctx`` for the model.
    """

    def __init__(self, *, prompt_tokens: int, max_tokens: int, n_ctx: int, model: str) -> None:
        super().__init__(
            f"{model}: the prompt has {prompt_tokens} tokens and the reply may take {max_tokens}, "
            f"more than the context window of {n_ctx} tokens; shorten the conversation or raise "
            f"n_ctx in the model's config"
        )
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.n_ctx = n_ctx


class ModelCapacity(ModelError):
    """The process already runs ``[bot] max_model_instances`` llama.cpp instances and none of
    them is idle: a new one would go past the cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"every model instance the bot may run is busy ({limit}, its "
                         f"max_model_instances); try again in a minute")
        self.limit = limit
