"""Junction: an LLM gateway sidecar."""

__version__ = "0.1.0"
