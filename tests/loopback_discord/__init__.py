"""A loopback Discord for the unmodified discord.py client: HTTP API v10 and gateway on 127.0.0.1.

``LoopbackDiscord`` (server.py) serves the world and enforces Discord's rules; ``Driver``
(driver.py) plays the people. docs/loopback-discord.md describes both.
"""

from tests.loopback_discord.driver import CommandNotSynced, Driver, text_of
from tests.loopback_discord.server import LoopbackDiscord

__all__ = ["CommandNotSynced", "Driver", "LoopbackDiscord", "text_of"]
