"""Pure translators between the Anthropic Messages and OpenAI Chat Completions dialects.

One direction per module; no sockets, no clocks read implicitly. Request translators take the
parsed client body and return the provider's body; response translators take parsed provider
objects (whole bodies, or stream chunks one at a time) and return the client's.
"""
