"""LLM providers behind one interface: local GGUF (llama-cpp-python), cloud and OpenAI-compatible (litellm)."""

from activities.providers.base import Provider, ProviderError, ProviderOutput, make_provider

__all__ = ["Provider", "ProviderError", "ProviderOutput", "make_provider"]
