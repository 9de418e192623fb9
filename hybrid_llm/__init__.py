"""Entry-point wiring: settings, Temporal connection, the embedded stack, CLI and HTTP API."""
