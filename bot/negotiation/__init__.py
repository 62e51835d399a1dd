"""The pure negotiation core.

Nothing in this package imports discord, llama_cpp, a database driver, a network library or
torch (tests/test_purity.py checks), so it runs and tests anywhere.
"""
