"""The `hybrid-llm` command line. Client paths stay free of torch, litellm and llama_cpp so they start fast."""
