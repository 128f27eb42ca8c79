"""The open-loop scheduler and latency-from-schedule, driven by a fake clock (integer ns)."""

from benchmarks.pacing import ConnectionPacer, OpenLoopSchedule, RunStats, Window

MS = 1_000_000


def open_loop(
    rate: float, connections: int, warmup_s: float = 0.0, duration_s: float = 1.0
) -> tuple[RunStats, OpenLoopSchedule, list[ConnectionPacer]]:
    stats = RunStats()
    window = Window.after(0, warmup_s, duration_s)
    schedule = OpenLoopSchedule.for_rate(window, rate, connections)
    pacers = [ConnectionPacer(stats, window, i, schedule) for i in range(connections)]
    return stats, schedule, pacers


def test_rate_is_spread_evenly_across_connections() -> None:
    _, schedule, pacers = open_loop(1000, 2)
    assert schedule.interval_ns == 1 * MS
    # Connection 0 owns requests 0, 2, 4 ... and connection 1 owns 1, 3, 5 ...
    assert [pacers[0].next_due_ns(), pacers[1].next_due_ns()] == [0, 1 * MS]
    assert pacers[0].try_send(0)
    pacers[0].complete(100_000, 200)
    assert pacers[0].next_due_ns() == 2 * MS
    assert pacers[1].next_due_ns() == 1 * MS


def test_nothing_goes_out_before_it_is_due() -> None:
    stats, _, (pacer,) = open_loop(1000, 1)
    assert pacer.try_send(0)
    pacer.complete(200_000, 200)
    assert not pacer.try_send(999_999)
    assert pacer.try_send(1 * MS + 50_000)  # the tick came 50 us late
    pacer.complete(1 * MS + 250_000, 200)
    assert stats.late == 0
    # Latency counts from the due time (1 ms), service time from the actual send.
    assert stats.latency.max == 250_000
    assert stats.service.max == 200_000
    assert stats.send_lag.max == 50_000


def test_a_stalled_server_shows_up_as_latency_not_as_missing_samples() -> None:
    stats, _, (pacer,) = open_loop(1000, 1)  # one request due every millisecond
    assert pacer.try_send(0)
    # The server takes 5 ms; requests due at 1, 2, 3, 4 ms wait behind it.
    pacer.complete(5 * MS, 200)
    assert pacer.try_send(5 * MS)  # sent at once: it was due at 1 ms
    assert pacer.origin_ns == 1 * MS
    pacer.complete(5 * MS + 100_000, 200)
    assert pacer.try_send(5 * MS + 100_000)  # due at 2 ms, still late
    pacer.complete(5 * MS + 200_000, 200)
    assert stats.late == 2
    assert stats.completed == 3
    # The second request's latency is 4.1 ms (due 1 ms, done 5.1 ms), although the server
    # answered it in 0.1 ms: waiting for the busy connection counts.
    assert stats.latency.percentile(100) >= 5 * MS
    assert 4_100_000 <= stats.latency.percentile(50) <= 4_100_000 * 1.01
    assert stats.service.percentile(50) <= 100_000 * 1.01


def test_only_requests_due_inside_the_window_are_recorded() -> None:
    stats, _, (pacer,) = open_loop(1000, 1, warmup_s=0.002, duration_s=0.002)
    now = 0
    while pacer.try_send(now):
        pacer.complete(now + 10_000, 200)
        now += MS
    # Due at 0, 1 (warmup), 2, 3 (measured); 4 ms is the end, so nothing more goes out.
    assert stats.total_responses == 4
    assert stats.completed == 2 and stats.sent == 2 and stats.ok == 2
    assert not pacer.try_send(10 * MS)


def test_requests_still_queued_at_the_end_are_counted_unsent() -> None:
    _, _, (pacer,) = open_loop(1000, 1, warmup_s=0.0, duration_s=0.010)
    assert pacer.try_send(0)
    pacer.complete(3_500_000, 200)  # due 1, 2, 3 ms are queued behind it
    assert pacer.count_unsent() == 9  # due at 1..9 ms, none sent yet
    assert pacer.try_send(3_500_000)
    assert pacer.count_unsent() == 8


def test_non_2xx_timeouts_and_connection_errors_are_counted_apart() -> None:
    stats, _, (pacer,) = open_loop(1000, 1)
    assert pacer.try_send(0)
    pacer.complete(10_000, 503)
    assert pacer.try_send(1 * MS)
    pacer.fail(2 * MS, timed_out=True)
    pacer.fail(2 * MS, timed_out=True)  # nothing in flight: no double count
    assert pacer.try_send(2 * MS)
    pacer.disconnected(2 * MS + 10)
    assert stats.status_errors == {503: 1}
    assert stats.ok == 0 and stats.completed == 1
    assert stats.timeouts == 1 and stats.connection_errors == 1


def test_requests_due_while_the_connection_is_down_are_late() -> None:
    stats, _, (pacer,) = open_loop(1000, 1)
    pacer.disconnected(0)
    pacer.connected(1_500_000)
    assert pacer.try_send(1_500_000)  # due at 0, sent at 1.5 ms
    pacer.complete(1_600_000, 200)
    assert stats.late == 1
    assert stats.latency.max == 1_600_000


def test_closed_loop_sends_whenever_idle_and_measures_from_the_send() -> None:
    stats = RunStats()
    window = Window.after(0, 0.001, 0.001)
    pacer = ConnectionPacer(stats, window, 0, None)
    assert pacer.try_send(0)  # warmup
    assert not pacer.try_send(1)  # one request in flight at most
    pacer.complete(600_000, 200)
    assert pacer.try_send(1_200_000)
    pacer.complete(1_500_000, 200)
    assert not pacer.try_send(2 * MS)  # the window is over
    assert stats.total_responses == 2 and stats.completed == 1
    assert stats.latency.max == 300_000
    assert stats.late == 0 and pacer.count_unsent() == 0


def test_throughput_counts_only_completions_inside_the_window() -> None:
    stats, _, (pacer,) = open_loop(1000, 1, warmup_s=0.0, duration_s=0.003)
    assert pacer.try_send(0)
    pacer.complete(1_500_000, 200)  # inside the window
    assert pacer.try_send(1_500_000)  # due at 1 ms
    pacer.complete(2_500_000, 200)  # inside
    assert pacer.try_send(2_500_000)  # due at 2 ms
    pacer.complete(3_200_000, 200)  # after the 3 ms end: recorded, but not throughput
    assert stats.completed == 3 and stats.completed_in_window == 2
