"""Chat backends that run the models: llama.cpp in process, OpenAI-compatible HTTP, fakes."""
