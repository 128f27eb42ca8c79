"""The simulated LLM provider used by ``make run``, the tests and the benchmarks.

It speaks the Anthropic Messages and OpenAI Chat Completions dialects over HTTP/1.1, h2c and
TLS, answers deterministically, injects failures on demand (options or ``x-mock-*`` request
headers) and records what it received. It imports nothing else from ``proxy`` on purpose.

Endpoints: ``POST /v1/messages`` (+ ``/v1/messages/count_tokens``), ``POST
/v1/chat/completions``, ``GET /v1/models[/{id}]``, ``GET|HEAD /``.

What an answer holds: optional thinking (Anthropic ``thinking`` enabled/adaptive; OpenAI
``reasoning_effort`` other than "none" or a ``thinking`` object not disabled, streamed as
``delta.reasoning_content``), text (starting ``[saw N images] `` when the request held N
image blocks / ``image_url`` parts), then tool calls when the request offers tools, does not
forbid them (tool_choice none) and its last user message is not a tool result. Anthropic
thinking carries a deterministic fake signature. The OpenAI answer to a tool turn has no text.
With an OpenAI ``response_format`` of ``json_schema`` (or ``json_object``) the text is one JSON
value matching the schema's simple parts (every required property, ``"mock"`` for strings).

Per-request headers (an unknown ``x-mock-*`` header or a bad value is a 400):

==========================  =================================================================
``x-mock-latency-ms``       time to first byte
``x-mock-tokens-per-s``     stream pace (0 = unpaced)
``x-mock-sse-gap-ms``       extra pause between streamed events
``x-mock-output-tokens``    answer length in words (max_tokens still cuts it)
``x-mock-fail``             ``status:<code>``, ``reset``, ``reset-mid-stream``, ``stall``,
                            ``stall-mid-stream``, ``overloaded-in-stream``, ``garbage``,
                            ``bad-json`` (see `FailMode`); 429/503/529 carry ``retry-after``
``x-mock-status``           reply status: >= 400 as ``status:<code>``, else the success code
``x-mock-tool-calls``       1..8 parallel tool calls (default 1), cycling through the offered
                            tools with distinct ids; 1 when the request sets
                            ``parallel_tool_calls: false`` / ``disable_parallel_tool_use``
``x-mock-interleave-tools`` 1 = OpenAI streams interleave the calls' argument fragments
``x-mock-reasoning``        1 / 0 = think (either dialect) whatever the request says / never
``x-mock-cached-tokens``    N prompt tokens read from the cache, on top of the estimate:
                            Anthropic ``cache_read_input_tokens`` = N (``input_tokens``
                            unchanged), OpenAI ``prompt_tokens`` += N and
                            ``prompt_tokens_details.cached_tokens`` = N
``x-mock-strict``           1 / 0 = run / skip the strict request checks
==========================  =================================================================

Strict checks (on unless ``MockOptions.strict`` is False, ``--lenient``) reject with a 400 in
the endpoint's dialect what a real provider rejects, so translation bugs surface in tests:
see `anthropic_checks` and `openai_checks` for the lists (and docs/mock-provider.md).
"""

from proxy.mock_provider.options import FailMode, MockOptions
from proxy.mock_provider.recording import RecordedRequest
from proxy.mock_provider.server import MockProvider

__all__ = ["FailMode", "MockOptions", "MockProvider", "RecordedRequest"]
