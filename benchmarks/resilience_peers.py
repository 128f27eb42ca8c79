"""The resilience bench's peer comparison: Junction, LiteLLM proxy and claude-code-router on the
same three mock deployments (one healthy, one failing half its requests with a 500, one that
accepts and never answers), at one offered rate that every one of them sustains when healthy.

How this works: LiteLLM serves about 75 req/s on one worker here, far from the 1,000 req/s of
the Junction-only runs, so the comparison first measures LiteLLM's closed-loop ceiling with
healthy deployments and offers half of it (or --peer-rate) to every gateway in turn, healthy
then faulty, run after run, so they share the session's disturbances. Before each measured
window the gateway gets a few seconds of the same load for another model on a fourth, healthy
deployment ("warm"): LiteLLM answers its first requests of a fresh process in seconds, and
that start-up is not what is compared here, while the three deployments under test see no
request before the measured window (the faults are there from its first request). The
deployments are `benchmarks/counting_mocks.py` in one process: the requests d0-d2 received,
divided by the requests the client sent, give upstream attempts per request for every
gateway alike. Each gateway is configured as its users would configure it for this (see the
*_config functions); installing and starting LiteLLM and claude-code-router is
`benchmarks/peers.py`'s job. The gateway alone is on core 0; the mocks and the load generator
on core 1. Loopback only; every process is stopped after its run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.peers import LITELLM_KEY, PeerLaunch, Ports, ccr_launch, litellm_launch
from benchmarks.procs import BenchError, Services, pinned, port_is_free
from benchmarks.resilience_bench import (
    CLIENT_TIMEOUT_S,
    CONFIG,
    FIRST_BYTE_TIMEOUT_S,
    GOAL_P99_RATIO,
    GOAL_SUCCESS_PCT,
    LOAD_CPU,
    PROXY_CPU,
    REPO,
    cell,
    loadgen_argv,
)
from benchmarks.workload import BODY, MODEL

DEPLOYMENTS = ("d0", "d1", "d2")
WARM = "warm"  # the healthy deployment the warm-up goes to, through another model name
WARMUP_S = 3.0
# (share of requests failing, how) per deployment in the faulty runs: the faults
FAULTS = {"d0": (0.0, "status:500"), "d1": (0.5, "status:500"), "d2": (1.0, "stall")}
ANTHROPIC_HEADERS = [("anthropic-version", "2023-06-01"), ("content-type", "application/json")]
CEILING_S = 8.0  # LiteLLM's closed-loop ceiling: measured seconds (after the warm-up)
CEILING_CONNECTIONS = 32
FALLBACK_RATE = 30  # req/s without LiteLLM to measure and no --peer-rate: below its ceiling
# LiteLLM: its documented reliability settings (router retries, per-deployment timeouts,
# allowed_fails per minute before a cooldown, and the cooldown), the timeouts equal to
# Junction's first-byte timeout so both give up on the stalled deployment after the same wait.
LITELLM_NUM_RETRIES = 2  # three deployments: the first try and two more
# The value of its reliability docs' example, and its own default: LiteLLM then keeps its
# newer rule (a deployment cools down when over half its requests this minute failed, after
# at least 5), rather than counting failures against allowed_fails.
LITELLM_ALLOWED_FAILS = 3
LITELLM_COOLDOWN_S = 30


@dataclass(frozen=True, slots=True)
class PeerPorts:
    """The comparison's loopback ports: the three mocks, Junction and its admin, the peers."""

    d0: int
    d1: int
    d2: int
    warm: int
    junction: int
    admin: int
    peers: Ports  # the suite's layout; only .litellm and .ccr are bound here

    @classmethod
    def from_base(cls, base: int) -> PeerPorts:
        return cls(
            base, base + 1, base + 2, base + 3, base + 4, base + 5, Ports.from_base(base + 6)
        )

    def deployment(self, name: str) -> int:
        port: int = getattr(self, name)
        return port

    def bound(self) -> dict[str, int]:
        return {
            **{d: self.deployment(d) for d in (*DEPLOYMENTS, WARM)},
            "junction": self.junction,
            "admin": self.admin,
            "litellm": self.peers.litellm,
            "ccr": self.peers.ccr,
        }


@dataclass(frozen=True, slots=True)
class Gateway:
    """One row group of the table: a gateway and how it is set up for the faults."""

    key: str
    label: str
    kind: str  # "junction" | "litellm" | "ccr"
    primary: str = "d0"  # ccr only: the deployment Router.default names
    healthy: bool = True  # False: the healthy run would repeat another row's
    once: bool = False  # True: every run would give the same, so one is enough

    @property
    def warm_model(self) -> str:
        """The model name that reaches the warm-up deployment through this gateway."""
        return "warmup" if self.kind == "litellm" else f"{WARM},{MODEL}"


def gateways(names: list[str]) -> list[Gateway]:
    out = [Gateway("junction", "Junction", "junction")]
    if "litellm" in names:
        out.append(Gateway("litellm", "LiteLLM proxy", "litellm"))
    if "ccr" in names:
        out.append(
            Gateway("ccr-d1", "claude-code-router, primary d1 (fails 50 %)", "ccr", primary="d1")
        )
        out.append(
            Gateway(
                "ccr-d2",
                "claude-code-router, primary d2 (stalled)",
                "ccr",
                primary="d2",
                healthy=False,
                once=True,
            )
        )
    return out


# -- configs (pure) ---------------------------------------------------------------------------


def litellm_config(ports: PeerPorts, timeout_s: float = FIRST_BYTE_TIMEOUT_S) -> str:
    """Three deployments of one model group, as LiteLLM's reliability docs set them up."""
    deployments = "".join(
        f"""\
  - model_name: {MODEL}
    litellm_params:
      model: anthropic/{MODEL}
      api_base: http://127.0.0.1:{ports.deployment(d)}
      api_key: bench
      timeout: {timeout_s:g}          # the whole call: the mock answers in well under 1 ms
      stream_timeout: {timeout_s:g}   # the first chunk of a stream
"""
        for d in DEPLOYMENTS
    )
    return f"""\
# Generated by benchmarks/resilience_peers.py.
model_list:
{deployments}  - model_name: warmup   # the warm-up's own group: d0-d2 see none of it
    litellm_params:
      model: anthropic/{MODEL}
      api_base: http://127.0.0.1:{ports.warm}
      api_key: bench
litellm_settings:
  telemetry: false
  drop_params: true
router_settings:
  routing_strategy: simple-shuffle   # its default, and what its docs advise for production
  num_retries: {LITELLM_NUM_RETRIES}
  allowed_fails: {LITELLM_ALLOWED_FAILS}   # failures per minute before a deployment cools down
  cooldown_time: {LITELLM_COOLDOWN_S}
general_settings:
  master_key: {LITELLM_KEY}
"""


def ccr_failover_config(ports: PeerPorts, primary: str) -> dict[str, object]:
    """claude-code-router's nearest equivalent: one provider per deployment, `Router.default` on
    one of them and the others in `fallback.default`, tried in order when it answers non-2xx."""
    providers = [
        {
            "name": d,
            "api_base_url": f"http://127.0.0.1:{ports.deployment(d)}/v1/messages",
            "api_key": "bench",
            "models": [MODEL],
            "transformer": {"use": ["Anthropic"]},
        }
        for d in (*DEPLOYMENTS, WARM)  # the warm-up names its provider: `warm,<model>`
    ]
    return {
        "PORT": ports.peers.ccr,
        "APIKEY": "bench",
        "LOG": False,
        "Providers": providers,
        "Router": {"default": f"{primary},{MODEL}"},
        "fallback": {"default": [f"{d},{MODEL}" for d in DEPLOYMENTS if d != primary]},
    }


def junction_config(ports: PeerPorts, strategy: str) -> str:
    """The Junction-only runs' config plus a provider for the warm-up (`warm,<model>`)."""
    config = CONFIG.format(
        port=ports.junction,
        admin=ports.admin,
        first_byte=FIRST_BYTE_TIMEOUT_S,
        strategy=strategy,
        model=MODEL,
        **{d: ports.deployment(d) for d in DEPLOYMENTS},
    )
    warm = (
        f"  - {{name: {WARM}, dialect: anthropic, api_key: bench, models: [{MODEL}],"
        f' base_url: "http://127.0.0.1:{ports.warm}"}}\n'
    )
    head, router, tail = config.partition("router:\n")
    if not router:
        raise BenchError("the resilience config has no router section")
    return head + warm + router + tail


def mock_argv(python: str, ports: PeerPorts, faulty: bool, counts: Path) -> list[str]:
    argv = [python, "-m", "benchmarks.counting_mocks", "--counts", str(counts)]
    for d in DEPLOYMENTS:
        rate, mode = FAULTS[d] if faulty else (0.0, "status:500")
        argv += ["--deployment", d, str(ports.deployment(d)), f"{rate:g}", mode]
    return [*argv, "--deployment", WARM, str(ports.warm), "0", "status:500"]


# -- runs -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Session:
    """What every run of the comparison shares."""

    args: argparse.Namespace
    work: Path
    ports: PeerPorts
    versions: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def launch(self, gw: Gateway, tag: str) -> PeerLaunch | str:
        if gw.kind == "junction":
            config = self.work / f"peers-junction-{tag}.yaml"
            config.write_text(junction_config(self.ports, self.args.strategy))
            argv = [self.args.python, "-m", "proxy", "serve", "--config", str(config)]
            return PeerLaunch(
                "junction", argv, self.ports.junction, headers=[("x-api-key", "bench")]
            )
        if gw.kind == "litellm":
            config = self.work / f"peers-litellm-{tag}.yaml"
            config.write_text(litellm_config(self.ports))
            return litellm_launch(self.args.peer_dir, self.ports.peers, "python3", config)
        return ccr_launch(
            self.args.peer_dir,
            self.ports.peers,
            ccr_failover_config(self.ports, gw.primary),
            home=self.work / f"ccr-home-{tag}",
        )

    def run(
        self, gw: Gateway, faulty: bool, tag: str, mode: list[str], duration: float, warm: bool
    ) -> Any:
        """One run: mocks, the gateway, the warm-up (when `warm`), the load; the summary and
        the deployments' counts, or the reason it was not measured."""
        busy = [f"{n} {p}" for n, p in self.ports.bound().items() if not port_is_free(p)]
        if busy:
            raise BenchError(f"ports busy: {', '.join(busy)}; pick another --port-base")
        services = Services(self.work)
        counts = self.work / f"counts-{tag}.json"
        out = self.work / f"load-{tag}.json"
        warm_out = self.work / f"warm-{tag}.json"
        try:
            argv = pinned(LOAD_CPU, mock_argv(self.args.python, self.ports, faulty, counts))
            mocks = services.start(f"mocks-{tag}", argv, REPO)
            for d in (*DEPLOYMENTS, WARM):
                services.wait_ready(mocks, self.ports.deployment(d))
            how = self.launch(gw, tag)
            if isinstance(how, str):
                return how
            env = os.environ | how.env if how.env else None
            target = services.start(f"{gw.key}-{tag}", pinned(PROXY_CPU, how.argv), REPO, env)
            try:
                services.wait_ready(target, how.port, how.ready_timeout_s)
            except BenchError as e:
                return f"did not start: {str(e)[:300]}"
            self.versions.setdefault(gw.kind, how.version)
            url = f"http://127.0.0.1:{how.port}/v1/messages"
            headers = [*how.headers, *ANTHROPIC_HEADERS]
            if warm:
                body = BODY.replace(f'"model":"{MODEL}"', f'"model":"{gw.warm_model}"', 1)
                argv = loadgen_argv(self.args.python, url, mode, WARMUP_S, headers, warm_out, body)
                self._load(services, f"warm-{tag}", argv, WARMUP_S)
            argv = loadgen_argv(self.args.python, url, mode, duration, headers, out)
            self._load(services, f"load-{tag}", argv, duration)
            services.stop(target)  # first the gateway, so the mocks' counts are final
        finally:
            services.stop_all()
        got = {"load": json.loads(out.read_text()), "counts": json.loads(counts.read_text())}
        if warm:  # kept to show that the warm-up was answered (its requests went through)
            w = json.loads(warm_out.read_text())
            got["warmup"] = {"sent": w["sent"], "ok": w["ok"]}
        return got

    @staticmethod
    def _load(services: Services, name: str, argv: list[str], duration: float) -> None:
        gen = services.start(name, pinned(LOAD_CPU, argv), REPO)
        gen.popen.wait(timeout=duration + CLIENT_TIMEOUT_S + 60)
        if gen.popen.returncode != 0:
            raise BenchError(f"load generator failed:\n{gen.stderr_tail()}")
        services.stop(gen)


def peer_rate(ceiling_rps: float) -> int:
    """Half of LiteLLM's healthy ceiling, in steps of 5 req/s, at least 10."""
    return max(10, round(ceiling_rps / 2 / 5) * 5)


def compare(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Every gateway, healthy and faulty, --peer-runs times; the raw results for render_peers()."""
    session = Session(args, work, PeerPorts.from_base(args.port_base + 10))
    gws = gateways(args.peers)
    result: dict[str, Any] = {"rate": args.peer_rate, "ceiling": None, "runs": {}}
    if "litellm" in args.peers and not args.peer_rate:
        print("peers: LiteLLM's healthy closed-loop ceiling", flush=True)
        mode = ["--closed-loop", "--connections", str(CEILING_CONNECTIONS), "--warmup", "1"]
        litellm = next(g for g in gws if g.kind == "litellm")
        ceiling = session.run(litellm, False, "ceiling", mode, CEILING_S, warm=True)
        if isinstance(ceiling, str):
            session.skipped["litellm"] = ceiling
            gws = [g for g in gws if g.kind != "litellm"]
        else:
            result["ceiling"] = ceiling["load"]["achieved_rps"]
            result["rate"] = peer_rate(result["ceiling"])
    rate = result["rate"] or FALLBACK_RATE
    result["rate"] = rate
    mode = ["--rate", str(rate), "--connections", str(args.peer_connections), "--warmup", "0"]
    for i in range(args.peer_runs):
        for gw in gws:
            if gw.key in session.skipped or gw.kind in session.skipped or (gw.once and i):
                continue
            for faulty in (False, True) if gw.healthy else (True,):
                key = "faulty" if faulty else "healthy"
                print(f"peers run {i + 1}/{args.peer_runs}: {gw.key} {key} {rate}/s", flush=True)
                tag = f"{gw.key}-{key}-{i}"
                got = session.run(gw, faulty, tag, mode, args.peer_duration, warm=True)
                if isinstance(got, str):
                    session.skipped[gw.key] = got
                    break
                result["runs"].setdefault(gw.key, {}).setdefault(key, []).append(got)
    result["skipped"] = session.skipped
    result["versions"] = session.versions
    result["gateways"] = [{"key": g.key, "label": g.label, "kind": g.kind} for g in gws]
    return result


# -- report (pure) ----------------------------------------------------------------------------


def figures(run: dict[str, Any]) -> dict[str, float | None]:
    """One run's figures; latencies are None when no answer came back at all."""
    load = run["load"]
    ok, errors = load["ok"], load["errors"]["total"]
    lat = load["latency_ms"]
    answered = lat.get("count", 0) > 0
    sent = load["sent"]
    counts = run["counts"]
    attempts = sum(counts.get(d, 0) for d in DEPLOYMENTS)  # not the warm-up's
    out: dict[str, float | None] = {
        "success_pct": 100.0 * ok / (ok + errors) if ok + errors else 0.0,
        "p50_ms": lat["p50"] if answered else None,
        "p99_ms": lat["p99"] if answered else None,
        "p999_ms": lat["p99.9"] if answered else None,
        "attempts_per_request": attempts / sent if sent else None,
    }
    for d in DEPLOYMENTS:
        out[f"share_{d}"] = 100.0 * counts.get(d, 0) / attempts if attempts else None
    return out


def _cell(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "n/a"
    return cell(known)


def _share(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{statistics.median(known):.0f}" if known else "n/a"


COLUMNS = (
    ("success_pct", "success, %"),
    ("p50_ms", "p50, ms"),
    ("p99_ms", "p99, ms"),
    ("p999_ms", "p99.9, ms"),
    ("attempts_per_request", "upstream attempts per request"),
)


def render_peers(result: dict[str, Any], args: argparse.Namespace) -> str:
    rate = result["rate"]
    ceiling = result.get("ceiling")
    why_rate = (
        f"LiteLLM proxy on one worker (its default) served at most {ceiling:,.0f} req/s here"
        f" with healthy deployments (closed loop, {CEILING_CONNECTIONS} connections, measured"
        " first in this session), so 1,000 req/s is out of its reach; every gateway below,"
        f" Junction included, gets about half of that, {rate} req/s,"
        if ceiling
        else "LiteLLM proxy serves about 75 req/s on one worker on this machine (the main"
        " suite), so 1,000 req/s is out of its reach; every gateway below, Junction included,"
        f" gets {rate} req/s (--peer-rate),"
    )
    lines = [
        "## Peers under the same faults",
        "",
        f"**Offered rate: {rate} req/s, not 1,000.** {why_rate} open loop,"
        f" {args.peer_connections} connections, {args.peer_duration:g} s per run,"
        f" {args.peer_runs} runs taken in turn in the same session, each after"
        f" {WARMUP_S:g} s of the same load for another model on a fourth, healthy deployment"
        " (LiteLLM takes seconds over its first requests after a start; d0-d2 see none of the"
        " warm-up). Same three deployments (d1 answers 500 to half its requests, d2 accepts and"
        " never answers, from the first measured request), here in one mock process that"
        " counts what each deployment received:"
        " upstream attempts per request = requests the deployments received / requests sent,"
        " the same measure for every gateway. Latencies are over the answers that came back"
        f" (a request unanswered after the client's {CLIENT_TIMEOUT_S:g} s counts as a"
        " failure, not as a latency). Medians of the runs, spread in brackets.",
        "",
        "| gateway | deployments | "
        + " | ".join(label for _, label in COLUMNS)
        + " | attempts to d0 / d1 / d2, % |",
        "|---|---|" + "--:|" * (len(COLUMNS) + 1),
    ]
    runs = result["runs"]
    for gw in result["gateways"]:
        for key, what in (("healthy", "all healthy"), ("faulty", "d1 50 % 500s, d2 stalled")):
            got = runs.get(gw["key"], {}).get(key)
            if not got:
                continue
            figs = [figures(r) for r in got]
            cells = [_cell([f[k] for f in figs]) for k, _ in COLUMNS]
            shares = " / ".join(_share([f[f"share_{d}"] for f in figs]) for d in DEPLOYMENTS)
            lines.append(f"| {gw['label']} | {what} | {' | '.join(cells)} | {shares} |")
    for key, why in sorted(result.get("skipped", {}).items()):
        lines.append(f"| {key} | not measured: {why} |" + " |" * (len(COLUMNS) + 1))
    ratios = []
    for gw in result["gateways"]:
        got = runs.get(gw["key"], {})
        healthy = [figures(r)["p99_ms"] for r in got.get("healthy", [])]
        faulty = [figures(r)["p99_ms"] for r in got.get("faulty", [])]
        if not faulty:
            continue
        ok = statistics.median(figures(r)["success_pct"] or 0.0 for r in got["faulty"])
        if healthy and None not in healthy and None not in faulty:
            h = statistics.median(x for x in healthy if x is not None)
            f = statistics.median(x for x in faulty if x is not None)
            met = ok >= GOAL_SUCCESS_PCT and f / max(h, 1e-9) <= GOAL_P99_RATIO
            verdict = "goals met" if met else "goals missed"
            ratios.append(f"{gw['label']} {f / max(h, 1e-9):.2f}x ({verdict})")
        elif ok < GOAL_SUCCESS_PCT:  # no ratio to give: the success rate decides
            ratios.append(f"{gw['label']} {ok:.4g} % success (goals missed)")
    versions = result.get("versions", {})
    lines += [
        "",
        "p99 faulty / healthy, and the issue's goals (success at least"
        f" {GOAL_SUCCESS_PCT:g} %, p99 within {GOAL_P99_RATIO:g}x) at this rate: "
        + ("; ".join(ratios) or "n/a")
        + ".",
        "",
        "How each is set up (its own words for the same job):",
        "",
        f"- Junction: the config above (`{args.strategy}`, first-byte timeout"
        f" {FIRST_BYTE_TIMEOUT_S:g} s, retry, breaker and ejection settings at their defaults).",
        f"- LiteLLM proxy {versions.get('litellm', '')}: one model group of three deployments,"
        f" `routing_strategy: simple-shuffle` (its default), `num_retries: {LITELLM_NUM_RETRIES}`,"
        f" per-deployment `timeout` and `stream_timeout` {FIRST_BYTE_TIMEOUT_S:g} s (Junction's"
        f" first-byte timeout), `allowed_fails: {LITELLM_ALLOWED_FAILS}` and"
        f" `cooldown_time: {LITELLM_COOLDOWN_S}` as its reliability docs set them (3 is also"
        " its default, which leaves its own rule in charge: a deployment cools down when more"
        " than half its requests in the current minute failed, after at least 5); one worker"
        " (its default), as in the main suite.",
        f"- claude-code-router {versions.get('ccr', '')}: it has no way to spread one model's"
        " traffic over several deployments: `Router.default` names one provider and every"
        " request goes there. Its only failover is `fallback.default`, an ordered list of"
        " other providers tried when the first answers non-2xx (`provider_response_error`); a"
        " connection error or a timeout does not fall back, and its upstream timeout is one"
        " hour, not settable in config.json. So each deployment is a provider, one is"
        " `Router.default` and the other two are its fallbacks, in order. With the healthy d0"
        " as primary it never meets the faults; the rows show d1 as primary (its 500s fall"
        " back) and d2 as primary (the stall never ends, so nothing falls back; measured in the"
        " first round only, as every run is the same). Its healthy run is the same whichever"
        " deployment is primary.",
        "",
    ]
    return "\n".join(lines)
