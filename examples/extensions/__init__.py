"""Extensions for Junction: custom filters (docs/extending.md)."""
