"""The OTLP metrics pusher against a collector that is not there: failures are counted, the
loop keeps its pace, and stopping ends the thread."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
from pydantic import ValidationError

from proxy.config.observability import MetricsConfig
from proxy.observability.metrics import Registry
from proxy.observability.otlp_metrics import OtlpMetricsPusher


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused
    return port


def test_a_missing_collector_is_counted_and_never_holds_the_loop() -> None:
    async def go() -> tuple[OtlpMetricsPusher, int]:
        loop = asyncio.get_running_loop()
        registry = Registry()
        registry.counter("junction_things_total", "Things.").inc()
        pusher = OtlpMetricsPusher(
            loop,
            registry,
            f"http://127.0.0.1:{closed_port()}/v1/metrics",
            interval_s=0.05,
            timeout_s=0.5,
            service_name="t",
        )
        pusher.start()
        ticks = 0
        for _ in range(20):  # 0.4 s of a loop that must keep running at its own pace
            await asyncio.sleep(0.02)
            ticks += 1
        last = asyncio.wrap_future(pusher.stop())
        delivered = await asyncio.wait_for(last, 5)
        assert delivered is False
        await loop.run_in_executor(None, pusher.close)
        return pusher, ticks

    pusher, ticks = asyncio.run(go())
    assert ticks == 20
    assert pusher.failed >= 2 and pusher.exported == 0
    assert not any(t.name.startswith("junction-otlp") for t in threading.enumerate())


def test_the_config_refuses_an_endpoint_without_metrics_and_a_bad_url() -> None:
    with pytest.raises(ValidationError, match="needs enabled: true"):
        MetricsConfig(enabled=False, otlp_endpoint="http://127.0.0.1:4318/v1/metrics")
    with pytest.raises(ValidationError, match="http:// or https://"):
        MetricsConfig(otlp_endpoint="127.0.0.1:4318")
    with pytest.raises(ValidationError, match="credentials"):
        MetricsConfig(otlp_endpoint="http://user:pw@127.0.0.1:4318/v1/metrics")
    assert MetricsConfig(otlp_endpoint="https://c.example/v1/metrics").otlp_interval_s == 15.0
