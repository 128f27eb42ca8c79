from benchmarks.wrk import lua_script, parse_report

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:18780/v1/messages
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.94ms  200.29us   3.60ms   86.69%
    Req/Sec    33.96k     1.45k   37.37k    75.00%
  Latency Distribution
     50%  940.00us
     75%    0.99ms
     90%    1.11ms
     99%    1.55s
  67483 requests in 2.00s, 36.10MB read
  Socket errors: connect 0, read 2, write 0, timeout 5
  Non-2xx or 3xx responses: 7
Requests/sec:  33722.43
Transfer/sec:     18.04MB
"""


def test_parse_report_reads_rate_percentiles_and_errors() -> None:
    r = parse_report(WRK_OUTPUT)
    assert r["rps"] == 33722.43
    assert r["requests"] == 67483
    assert r["latency_ms"] == {"p50": 0.94, "p75": 0.99, "p90": 1.11, "p99": 1550.0}
    assert r["non_2xx_3xx"] == 7
    assert r["socket_errors"] == {"connect": 0, "read": 2, "write": 0, "timeout": 5}


def test_lua_script_quotes_headers_and_keeps_the_body_verbatim() -> None:
    body = '{"text":"a]]b]=]c"}'
    script = lua_script("POST", [("x-api-key", 'k"q')], body)
    assert 'wrk.method = "POST"' in script
    assert "wrk.body = [==[" + body + "]==]" in script
    assert 'wrk.headers["x-api-key"] = "k\\"q"' in script
