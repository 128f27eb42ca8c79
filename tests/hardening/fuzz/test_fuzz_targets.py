"""Fuzz targets, one per parser that reads hostile bytes: both HTTP/1.1 codecs (and their
agreement), the HTTP/2 codec, the SSE decoder, and the four translators fed JSON of any shape.

In the normal suite each target runs a small, fixed number of examples. `make fuzz` sets
JUNCTION_FUZZ_SECONDS, and each target then keeps drawing fresh examples (new seeds) until its
time budget is spent: a long hypothesis run, bounded in time, with the failing input printed
by hypothesis as usual."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from proxy.dialects.sse import SSEDecoder
from proxy.dialects.translate.a2o_request import anthropic_to_openai_request
from proxy.dialects.translate.a2o_response import anthropic_to_openai_response
from proxy.dialects.translate.a2o_stream import AnthropicToOpenAIStream
from proxy.dialects.translate.o2a_request import openai_to_anthropic_request
from proxy.dialects.translate.o2a_response import openai_to_anthropic_response
from proxy.dialects.translate.o2a_stream import OpenAIToAnthropicStream
from proxy.errors import DownstreamProtocolError, ProxyError
from proxy.protocol.http2 import H2ServerCodec
from proxy.protocol.http2_native import NativeH2ServerCodec
from proxy.protocol.limits import CodecLimits
from tests.hardening.test_h1_differential import check_agreement, mutated
from tests.property.test_http2_property import frames_strategy
from tests.unit.protocol.test_http2_support import RawClient

BUDGET_S = float(os.environ.get("JUNCTION_FUZZ_SECONDS", "0"))
_BATCH = settings(
    max_examples=500 if BUDGET_S else 40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=not BUDGET_S,  # the normal suite sees the same examples every run
)


def run_target(target: Callable[[], None]) -> None:
    """Once in the normal suite; under `make fuzz`, batch after batch with new seeds until
    JUNCTION_FUZZ_SECONDS have passed."""
    if not BUDGET_S:
        target()
        return
    end = time.monotonic() + BUDGET_S
    batch = 0
    while time.monotonic() < end:
        seed(batch)(target)()
        batch += 1


# ---- HTTP ----------------------------------------------------------------------------------------


def test_fuzz_http1_codecs() -> None:
    @_BATCH
    @given(data=st.one_of(mutated(), st.binary(max_size=400)))
    def target(data: bytes) -> None:
        check_agreement(data)  # raises on crashes, split dependence and disagreement

    run_target(target)


@pytest.mark.parametrize("codec_class", [NativeH2ServerCodec, H2ServerCodec])
def test_fuzz_http2_codec(codec_class: type[NativeH2ServerCodec | H2ServerCodec]) -> None:
    @_BATCH
    @given(frames=frames_strategy, cut=st.integers(1, 64))
    def target(frames: list[bytes], cut: int) -> None:
        codec = codec_class(CodecLimits())
        data = RawClient().preface() + b"".join(frames)
        try:
            for i in range(0, len(data), cut):
                codec.receive(data[i : i + cut], 0.0)
        except DownstreamProtocolError:
            assert not codec.keep_alive

    run_target(target)


# ---- SSE -----------------------------------------------------------------------------------------


def test_fuzz_sse_decoder() -> None:
    @_BATCH
    @given(data=st.binary(max_size=2000), cut=st.integers(1, 50))
    def target(data: bytes, cut: int) -> None:
        whole = SSEDecoder(max_event_bytes=512)
        split = SSEDecoder(max_event_bytes=512)
        try:
            expected = whole.feed(data) + whole.close()
        except ProxyError:
            return  # an over-long event: a typed error, which the split run must hit too
        got = []
        for i in range(0, len(data), cut):
            got += split.feed(data[i : i + cut])
        assert got + split.close() == expected

    run_target(target)


# ---- translators: client JSON of any shape -> a typed 400, never a crash -------------------------

# Integers as orjson parses them: beyond 64 bits a JSON number becomes a float.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
ANTHROPIC_KEYS = [
    "model",
    "max_tokens",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "stream",
    "stop_sequences",
    "temperature",
    "thinking",
    "metadata",
    "top_p",
    "top_k",
]
OPENAI_KEYS = [
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "tools",
    "tool_choice",
    "stream",
    "stop",
    "temperature",
    "response_format",
    "reasoning_effort",
    "user",
    "n",
]
ROLES = st.sampled_from(["user", "assistant", "system", "tool", "developer", 3])
BLOCK_TYPES = st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking", "x"])


def shaped(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    block = st.fixed_dictionaries(
        {"type": BLOCK_TYPES},
        optional={
            "text": json_values,
            "id": json_values,
            "name": json_values,
            "input": json_values,
            "content": json_values,
            "source": json_values,
            "tool_use_id": json_values,
        },
    )
    message = st.fixed_dictionaries(
        {"role": ROLES},
        optional={
            "content": st.one_of(json_values, st.lists(block, max_size=3)),
            "tool_calls": json_values,
            "tool_call_id": json_values,
        },
    )
    return st.fixed_dictionaries(
        {"messages": st.lists(message, max_size=4)},
        optional={k: json_values for k in keys if k != "messages"},
    )


def _translate_requests(body: dict[str, Any]) -> None:
    for fn in (anthropic_to_openai_request, openai_to_anthropic_request):
        try:
            out = fn(body, model="m")
        except ProxyError:
            continue
        orjson.dumps(out)  # whatever comes out is serialisable


def test_fuzz_request_translators() -> None:
    @_BATCH
    @given(body=st.one_of(shaped(ANTHROPIC_KEYS), shaped(OPENAI_KEYS)))
    def target(body: dict[str, Any]) -> None:
        _translate_requests(body)

    run_target(target)


def test_fuzz_response_and_stream_translators() -> None:
    @_BATCH
    @given(
        body=st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "content",
                    "choices",
                    "usage",
                    "stop_reason",
                    "type",
                    "role",
                    "model",
                    "message",
                ]
            ),
            json_values,
        ),
        events=st.lists(
            st.tuples(
                st.sampled_from(
                    [
                        "message_start",
                        "content_block_start",
                        "content_block_delta",
                        "content_block_stop",
                        "message_delta",
                        "message_stop",
                        "ping",
                        "error",
                        "",
                    ]
                ),
                json_values,
            ),
            max_size=8,
        ),
    )
    def target(body: dict[str, Any], events: list[tuple[str, Any]]) -> None:
        for fn in (
            lambda b: anthropic_to_openai_response(b, model="m", created=0),
            lambda b: openai_to_anthropic_response(b, model="m", message_id="msg_1"),
        ):
            with contextlib.suppress(ProxyError):  # a typed error is a fine answer
                orjson.dumps(fn(body))
        a2o = AnthropicToOpenAIStream("m", "c1", 0, include_usage=True)
        o2a = OpenAIToAnthropicStream("m", "msg_1")
        for name, data in events:
            a2o.on_event(name, data)
            o2a.on_chunk(data)
        a2o.on_eof()
        o2a.on_eof()

    run_target(target)
