"""The response cache in front of the mock provider, over real loopback HTTP: hits, policy,
per-request controls, what is not stored, tenants, the admin endpoint."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from proxy.mock_provider import MockProvider
from tests.integration.proxy.harness import Running

from .helpers import (
    AUTH,
    KEY_A,
    KEY_B,
    cache_stats,
    chat,
    chat_body,
    messages,
    msg,
    unique,
    verdict,
)


def test_second_identical_request_is_an_l1_hit_with_a_fresh_id(
    junctions: Callable[..., Running], mock: MockProvider
) -> None:
    run = junctions(auth=AUTH, cache={})
    body = msg(unique())
    first = messages(run, body)
    second = messages(run, body)
    assert (first.status_code, verdict(first)) == (200, "miss")
    assert (second.status_code, verdict(second)) == (200, "hit-l1")
    assert mock.requests_total == 1
    a, b = first.json(), second.json()
    assert a["content"] == b["content"] and a["usage"] == b["usage"]
    assert a["id"] != b["id"] and b["id"].startswith("msg_")
    assert int(second.headers["content-length"]) == len(second.content)
    # Key order, metadata.user_id and cache_control markers do not split the key.
    reordered = {k: body[k] for k in reversed(list(body))}
    reordered["metadata"] = {"user_id": "someone-else"}
    reordered["messages"] = [
        {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": body["messages"][0]["content"],
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        }
    ]
    # (a string content and a one-block list are different requests: the block form is a new key)
    assert verdict(messages(run, reordered)) == "miss"
    assert verdict(messages(run, {**reordered, "metadata": {"user_id": "third"}})) == "hit-l1"
    stats = cache_stats(run)
    assert stats["hits_l1_total"] == 2 and stats["misses_total"] == 2 and stats["stores_total"] == 2
    assert stats["l1"]["entries"] == 2 and stats["l2"] is None


def test_deterministic_policy_bypasses_sampled_requests(
    junctions: Callable[..., Running], mock: MockProvider
) -> None:
    run = junctions(auth=AUTH, cache={"policy": "deterministic"})
    sampled = msg(unique())
    del sampled["temperature"]
    assert [verdict(messages(run, sampled)) for _ in range(2)] == ["bypass", "bypass"]
    hot = msg(unique(), temperature=0.7)
    assert verdict(messages(run, hot)) == "bypass"
    greedy = msg(unique(), temperature=0.7, top_k=1)
    assert [verdict(messages(run, greedy)) for _ in range(2)] == ["miss", "hit-l1"]
    several = chat_body(unique(), n=2)
    assert verdict(chat(run, several)) == "bypass"
    assert mock.requests_total == 5
    assert cache_stats(run)["bypass_total"] == 4


def test_route_policy_for_an_alias_and_off_by_default(
    junctions: Callable[..., Running], mock: MockProvider
) -> None:
    run = junctions(
        auth=AUTH,
        router={"default": "mock,claude-sonnet-4-5", "aliases": {"evals": "mock,claude-haiku-4-5"}},
        cache={"policy": "off", "routes": {"evals": {"policy": "all"}}},
    )
    body = msg(unique())
    assert [verdict(messages(run, body)) for _ in range(2)] == ["bypass", "bypass"]
    evals = {**msg(unique(), temperature=1), "model": "evals"}
    assert [verdict(messages(run, evals)) for _ in range(2)] == ["miss", "hit-l1"]
    assert mock.requests_total == 3


def test_cache_control_headers_and_ttl_header(
    junctions: Callable[..., Running], mock: MockProvider
) -> None:
    run = junctions(auth=AUTH, cache={"max_ttl_s": 60})
    body = msg(unique())
    assert verdict(messages(run, body, **{"cache-control": "no-store"})) == "bypass"
    assert verdict(messages(run, body)) == "miss"  # nothing was stored by no-store
    assert verdict(messages(run, body)) == "hit-l1"
    refreshed = messages(run, body, **{"cache-control": "no-cache"})
    assert verdict(refreshed) == "miss"  # looked past the entry, stored the new answer
    assert mock.requests_total == 3
    assert verdict(messages(run, body)) == "hit-l1"
    # The TTL header is clamped to max_ttl_s and never reaches the provider.
    other = msg(unique())
    assert verdict(messages(run, other, **{"x-junction-cache-ttl": "99999"})) == "miss"
    assert mock.recorded[-1].header("x-junction-cache-ttl") is None
    cache = run.worker.holder.current.cache
    assert cache is not None
    entries = run.lt.call(
        lambda: [e.expires_wall_s - cache.wall() for e in cache.l1._entries.values()]
    )
    assert max(entries) <= 60 + 1


def test_errors_truncated_streams_and_in_band_errors_are_not_stored(
    junctions: Callable[..., Running], mock: MockProvider
) -> None:
    run = junctions(auth=AUTH, cache={}, resilience={"retry": {"max_retries": 0}})
    body = msg(unique())
    bad = messages(run, body, **{"x-mock-fail": "status:400"})
    assert bad.status_code == 400 and verdict(bad) == "miss"
    streamed = {**msg(unique()), "stream": True}
    cut = messages(run, streamed, **{"x-mock-fail": "reset-mid-stream"})
    assert cut.status_code == 200 and "message_stop" not in cut.text
    overloaded = {**msg(unique()), "stream": True}
    r = messages(run, overloaded, **{"x-mock-fail": "overloaded-in-stream"})
    assert "overloaded_error" in r.text
    openai_cut = chat(
        run, {**chat_body(unique()), "stream": True}, **{"x-mock-fail": "reset-mid-stream"}
    )
    assert "[DONE]" not in openai_cut.text
    assert cache_stats(run)["stores_total"] == 0
    # The same requests without failures are misses: nothing was stored for them.
    assert verdict(messages(run, body)) == "miss"
    assert verdict(messages(run, streamed)) == "miss"
    assert cache_stats(run)["stores_total"] == 2


def test_tenants_never_read_each_others_entries(
    junctions: Callable[..., Running], mock: MockProvider
) -> None:
    run = junctions(auth=AUTH, cache={})
    body = msg(unique())
    assert verdict(messages(run, body, key=KEY_A)) == "miss"
    assert verdict(messages(run, body, key=KEY_B)) == "miss"
    assert verdict(messages(run, body, key=KEY_A)) == "hit-l1"
    assert verdict(messages(run, body, key=KEY_B)) == "hit-l1"
    assert mock.requests_total == 2
    # Purge one tenant: the other keeps its entry.
    admin = f"http://127.0.0.1:{run.admin_port}/admin/cache"
    purged = httpx.post(admin, params={"tenant": "team-a"}, timeout=5)
    assert purged.status_code == 200 and purged.json()["l1_purged"] == 1
    assert verdict(messages(run, body, key=KEY_A)) == "miss"
    assert verdict(messages(run, body, key=KEY_B)) == "hit-l1"
    # Purge by key prefix: every key starts with one of 16 hex digits.
    total = sum(
        httpx.delete(admin, params={"prefix": digit}, timeout=5).json()["l1_purged"]
        for digit in "0123456789abcdef"
    )
    assert total == 2 and cache_stats(run)["l1"]["entries"] == 0
    assert httpx.post(admin, params={"prefix": "xyz"}, timeout=5).status_code == 400
    assert httpx.post(admin, params={"bogus": "1"}, timeout=5).status_code == 400


def test_a_route_change_makes_new_keys(
    junctions: Callable[..., Running], mock: MockProvider
) -> None:
    run = junctions(auth=AUTH, cache={})
    body = msg(unique())
    assert verdict(messages(run, body)) == "miss"
    assert verdict(messages(run, body)) == "hit-l1"
    text = run.config_path.read_text().replace(
        "default: mock,claude-sonnet-4-5", "default: mock,claude-haiku-4-5"
    )
    run.config_path.write_text(text)
    assert run.lt.call(run.worker.reload)
    assert verdict(messages(run, body)) == "miss"
    assert mock.requests_total == 2


def test_count_tokens_and_no_cache_section(
    junctions: Callable[..., Running], mock: MockProvider
) -> None:
    run = junctions(auth=AUTH, cache={})
    r = httpx.post(
        f"{run.url}/v1/messages/count_tokens",
        json={"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-api-key": KEY_A, "anthropic-version": "2023-06-01"},
        timeout=10,
    )
    assert r.status_code == 200 and verdict(r) == "bypass"
    plain = junctions(auth=AUTH)
    r = messages(plain, msg(unique()))
    assert r.status_code == 200 and verdict(r) is None
    assert (
        httpx.get(f"http://127.0.0.1:{plain.admin_port}/admin/cache", timeout=5).status_code == 404
    )
