"""haggle: an async Discord bot that haggles.

Importing ``bot`` is cheap: no discord, llama_cpp, database or torch import happens here.
"""

__version__ = "0.1.0"
