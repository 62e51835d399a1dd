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


class StoreError(HaggleError):
    """The database cannot be opened or written."""
