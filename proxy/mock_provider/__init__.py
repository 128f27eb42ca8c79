"""The simulated LLM provider used by ``make run``, the tests and the benchmarks.

It speaks the Anthropic Messages and OpenAI Chat Completions dialects over HTTP/1.1, h2c and
TLS, answers deterministically, injects failures on demand (options or ``x-mock-*`` request
headers) and records what it received. It imports nothing else from ``proxy`` on purpose.
"""

from proxy.mock_provider.options import FailMode, MockOptions
from proxy.mock_provider.recording import RecordedRequest
from proxy.mock_provider.server import MockProvider

__all__ = ["FailMode", "MockOptions", "MockProvider", "RecordedRequest"]
