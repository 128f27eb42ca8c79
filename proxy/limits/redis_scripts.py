"""The Lua scripts behind the shared limits, and the pure code that lays out their arguments.

How this works: every admission is one script call (EVALSHA) that sees every limit of every
scope that applies — the key's, the model's, the provider's — checks them all, and debits only
when all agree, exactly as `LocalLimiter` does (proxy/limits/local.py); Redis runs a script
atomically, so every worker and replica sees one consistent state. Each scope contributes five
keys, in this order:

- ``<prefix><scope>:rpm:<rate>``  GCRA theoretical arrival time, requests per minute
- ``<prefix><scope>:tpm:<rate>``  GCRA theoretical arrival time, tokens per minute
- ``<prefix><scope>:conc``        sorted set of concurrency leases, scored by expiry time
- ``<prefix><scope>:day:<n>``     USD spent in UTC day n (days since the epoch)
- ``<prefix><scope>:month:<n>``   USD spent in UTC month n (months since January 1970)

The rate is part of a GCRA key, so a changed rate starts a fresh bucket (as the local limiter
does on reload) and replicas on different configs during a rolling deploy do not fight over
one. A window index is part of a spend key, so a new day or month starts from nothing, with no
sweep. The GCRA arithmetic is gcra.py's, operation for operation, on the same doubles: times
travel as ``%.17g`` strings both ways (Lua's ``tostring`` keeps only 14 digits, and a number
returned from a script is cut to an integer). Every key carries a TTL (a GCRA key until its
bucket is full again, a spend key until its window is over, plus slack), so Redis holds no
state that would not matter any more.

A concurrency slot is a lease: a member of the scope's sorted set whose score is its expiry.
Admission first drops expired leases, so the slots of a worker that crashed (or lost Redis
while holding them) come back after ``lease_ttl_s``; the owner renews its live leases well
before then (proxy/limits/redis.py). Times are the callers' wall clocks (``now``, Unix
seconds), so the replicas' clocks should agree (NTP) to well within a lease.

The shell (proxy/limits/redis.py) computes what needs Python — prices, window indexes and the
time left in each window — and passes it in; this module only builds argument lists and reads
answers, so it is tested without I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from proxy.limits.api import LimitSpec
from proxy.limits.spend import day_index, month_index, window_end

# Extra life of every key beyond the moment its state stops mattering: a worker whose clock
# runs a little behind still finds the state.
KEY_TTL_SLACK_MS: Final = 60_000

# What refused, as the admission script reports it (1-based, the order limits are checked in).
LIMIT_KINDS: Final = ("requests", "tokens", "concurrency", "day", "month")
KEYS_PER_SCOPE: Final = 5

_GCRA_LUA: Final = """
local EPSILON = 1e-9
local function fmt(x) return string.format('%.17g', x) end
local function tat_of(key) return tonumber(redis.call('GET', key)) end
local function store_tat(key, tat, now)
  if tat > now then
    redis.call('SET', key, fmt(tat), 'PX', math.ceil((tat - now) * 1000) + SLACK_MS)
  else
    redis.call('DEL', key)
  end
end
-- gcra.py's wait_s: 0 when taking cost now conforms, else the seconds until it would.
local function gcra_wait(key, rate, cost, now)
  local interval = 60.0 / rate
  local tolerance = rate * interval
  local tat = tat_of(key)
  if tat == nil or tat < now then tat = now end
  local over = tat + math.min(cost, rate) * interval - now - tolerance
  if over > EPSILON then return over end
  return 0
end
-- gcra.py's debit (cost > 0) and adjust (either sign).
local function gcra_move(key, rate, delta, now)
  local interval = 60.0 / rate
  local tat = tat_of(key)
  if delta > 0 then
    if tat == nil or tat < now then tat = now end
    store_tat(key, tat + delta * interval, now)
  elseif delta < 0 and tat ~= nil then
    store_tat(key, tat + delta * interval, now)
  end
end
local function spent_of(key) return tonumber(redis.call('GET', key)) or 0 end
local function spend_add(key, usd, ttl_ms)
  redis.call('SET', key, fmt(math.max(spent_of(key) + usd, 0)), 'PX', ttl_ms)
end
"""

# KEYS: five per scope (module docstring). ARGV: now, est_tokens, usd, lease member, lease
# expiry, lease ttl ms, concurrency wait, day wait, month wait, day ttl ms, month ttl ms, then
# five limits per scope ('' = off): rpm, tpm, concurrent, USD per day, USD per month.
# Answers {1} when admitted, else {0, scope number, limit kind, wait as a string}.
ADMIT_LUA: Final = (
    _GCRA_LUA
    + """
local now = tonumber(ARGV[1])
local tokens = tonumber(ARGV[2])
local usd = tonumber(ARGV[3])
local member, expiry, lease_ms = ARGV[4], ARGV[5], tonumber(ARGV[6])
local waits = {0, 0, tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])}
local spend_ttl = {0, 0, 0, tonumber(ARGV[10]), tonumber(ARGV[11])}
local scopes = #KEYS / 5
local worst, worst_scope, worst_kind = 0, 0, 0
local function refuse(wait, scope, kind)
  if wait > worst then worst, worst_scope, worst_kind = wait, scope, kind end
end
for s = 1, scopes do
  local k, a = (s - 1) * 5, 11 + (s - 1) * 5
  local rpm, tpm = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local conc, day, month = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  if rpm then refuse(gcra_wait(KEYS[k + 1], rpm, 1, now), s, 1) end
  if tpm then refuse(gcra_wait(KEYS[k + 2], tpm, tokens, now), s, 2) end
  if conc then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 3], '-inf', ARGV[1])
    if redis.call('ZCARD', KEYS[k + 3]) >= conc then refuse(waits[3], s, 3) end
  end
  if day and spent_of(KEYS[k + 4]) >= day then refuse(waits[4], s, 4) end
  if month and spent_of(KEYS[k + 5]) >= month then refuse(waits[5], s, 5) end
end
if worst_scope > 0 then return {0, worst_scope, worst_kind, fmt(worst)} end
for s = 1, scopes do
  local k, a = (s - 1) * 5, 11 + (s - 1) * 5
  if ARGV[a + 1] ~= '' then gcra_move(KEYS[k + 1], tonumber(ARGV[a + 1]), 1, now) end
  if ARGV[a + 2] ~= '' then gcra_move(KEYS[k + 2], tonumber(ARGV[a + 2]), tokens, now) end
  if ARGV[a + 3] ~= '' then
    redis.call('ZADD', KEYS[k + 3], expiry, member)
    redis.call('PEXPIRE', KEYS[k + 3], lease_ms + SLACK_MS)
  end
  if usd ~= 0 then
    if ARGV[a + 4] ~= '' then spend_add(KEYS[k + 4], usd, spend_ttl[4]) end
    if ARGV[a + 5] ~= '' then spend_add(KEYS[k + 5], usd, spend_ttl[5]) end
  end
end
return {1}
"""
).replace("SLACK_MS", str(KEY_TTL_SLACK_MS))

# KEYS: three per scope: tpm, day, month ('' rate / '0' flags: that limit is off). ARGV: now,
# token delta, USD delta, day ttl ms, month ttl ms, then per scope: tpm rate, has day, has month.
RECORD_LUA: Final = (
    _GCRA_LUA
    + """
local now, d_tokens, d_usd = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local day_ms, month_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
for s = 1, #KEYS / 3 do
  local k, a = (s - 1) * 3, 5 + (s - 1) * 3
  if ARGV[a + 1] ~= '' and d_tokens ~= 0 then
    gcra_move(KEYS[k + 1], tonumber(ARGV[a + 1]), d_tokens, now)
  end
  if d_usd ~= 0 then
    if ARGV[a + 2] == '1' then spend_add(KEYS[k + 2], d_usd, day_ms) end
    if ARGV[a + 3] == '1' then spend_add(KEYS[k + 3], d_usd, month_ms) end
  end
end
return 1
"""
).replace("SLACK_MS", str(KEY_TTL_SLACK_MS))

# KEYS: concurrency sets. ARGV[1]: the lease member.
RELEASE_LUA: Final = """
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
"""

# KEYS: concurrency sets; ARGV: new expiry, ttl ms, then one member per key. XX: a lease that
# already expired (and may have been handed to someone else) is not brought back.
RENEW_LUA: Final = """
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', ARGV[1], ARGV[i + 2])
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2]) + SLACK_MS)
end
return 1
""".replace("SLACK_MS", str(KEY_TTL_SLACK_MS))


def fmt_float(value: float) -> str:
    """A double as a string that reads back as the same double (``repr`` does that)."""
    return repr(float(value))


def _opt(value: float | None) -> str:
    return "" if value is None else fmt_float(value) if isinstance(value, float) else str(value)


def scope_keys(prefix: str, label: str, spec: LimitSpec, now: float) -> list[str]:
    """The five keys of one scope at ``now`` (the GCRA keys carry the rate, spend keys the
    window)."""
    base = prefix + label
    return [
        f"{base}:rpm:{spec.requests_per_minute or 0}",
        f"{base}:tpm:{spec.tokens_per_minute or 0}",
        f"{base}:conc",
        f"{base}:day:{day_index(now)}",
        f"{base}:month:{month_index(now)}",
    ]


def window_ttls_ms(now: float) -> tuple[int, int]:
    """How long a spend key written at ``now`` must live: to its window's end, plus slack."""
    day = int((window_end("day", now) - now) * 1000) + KEY_TTL_SLACK_MS
    month = int((window_end("month", now) - now) * 1000) + KEY_TTL_SLACK_MS
    return day, month


def admit_args(
    prefix: str,
    scopes: Sequence[tuple[str, LimitSpec]],
    *,
    now: float,
    est_tokens: int,
    usd: float,
    lease: str,
    lease_ttl_s: float,
    concurrency_wait_s: float,
) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of one admission."""
    keys: list[str] = []
    limits: list[str] = []
    for label, spec in scopes:
        keys += scope_keys(prefix, label, spec, now)
        limits += [
            _opt(spec.requests_per_minute),
            _opt(spec.tokens_per_minute),
            _opt(spec.concurrent),
            _opt(spec.spend_per_day_usd),
            _opt(spec.spend_per_month_usd),
        ]
    day_ms, month_ms = window_ttls_ms(now)
    args = [
        fmt_float(now),
        str(est_tokens),
        fmt_float(usd),
        lease,
        fmt_float(now + lease_ttl_s),
        str(int(lease_ttl_s * 1000)),
        fmt_float(concurrency_wait_s),
        fmt_float(window_end("day", now) - now),
        fmt_float(window_end("month", now) - now),
        str(day_ms),
        str(month_ms),
        *limits,
    ]
    return keys, args


def record_args(
    prefix: str,
    scopes: Sequence[tuple[str, LimitSpec]],
    *,
    now: float,
    d_tokens: int,
    d_usd: float,
) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of one usage correction, in the windows current at ``now``."""
    keys: list[str] = []
    flags: list[str] = []
    for label, spec in scopes:
        _, tpm, _, day, month = scope_keys(prefix, label, spec, now)
        keys += [tpm, day, month]
        flags += [
            _opt(spec.tokens_per_minute),
            "1" if spec.spend_per_day_usd is not None else "0",
            "1" if spec.spend_per_month_usd is not None else "0",
        ]
    day_ms, month_ms = window_ttls_ms(now)
    args = [fmt_float(now), str(d_tokens), fmt_float(d_usd), str(day_ms), str(month_ms), *flags]
    return keys, args


class AdmitAnswer:
    """The admission script's answer, decoded: admitted, or which scope and limit refused
    and for how long."""

    __slots__ = ("admitted", "kind", "scope_index", "wait_s")

    def __init__(self, admitted: bool, scope_index: int, kind: str, wait_s: float) -> None:
        self.admitted = admitted
        self.scope_index = scope_index  # 0-based, into the scopes passed to admit_args
        self.kind = kind  # one of LIMIT_KINDS
        self.wait_s = wait_s


def parse_admit(reply: object, scopes: int) -> AdmitAnswer:
    """Decode the reply; raises ValueError on anything the script cannot have answered."""
    if not isinstance(reply, list) or not reply:
        raise ValueError(f"unexpected admission reply {reply!r}")
    if reply[0] == 1 and len(reply) == 1:
        return AdmitAnswer(True, 0, "", 0.0)
    if reply[0] != 0 or len(reply) != 4:
        raise ValueError(f"unexpected admission reply {reply!r}")
    scope, kind, wait = reply[1], reply[2], reply[3]
    if not (isinstance(scope, int) and 1 <= scope <= scopes):
        raise ValueError(f"unexpected scope in admission reply {reply!r}")
    if not (isinstance(kind, int) and 1 <= kind <= len(LIMIT_KINDS)):
        raise ValueError(f"unexpected limit in admission reply {reply!r}")
    text = wait.decode() if isinstance(wait, bytes) else str(wait)
    return AdmitAnswer(False, scope - 1, LIMIT_KINDS[kind - 1], float(text))


def refusal_text(label: str, spec: LimitSpec, kind: str) -> str:
    """The client's message for a refusal, word for word the local limiter's."""
    if kind == "requests":
        what = f"{spec.requests_per_minute} requests per minute"
    elif kind == "tokens":
        what = f"{spec.tokens_per_minute} tokens per minute"
    elif kind == "concurrency":
        what = f"{spec.concurrent} concurrent requests"
    elif kind == "day":
        what = f"${spec.spend_per_day_usd or 0:g} spend per day (UTC)"
    else:
        what = f"${spec.spend_per_month_usd or 0:g} spend per month (UTC)"
    scope_kind, _, name = label.partition(":")
    shown = {"key": "API key", "model": "model", "provider": "provider"}.get(scope_kind, scope_kind)
    return f"rate limit exceeded for {shown} {name!r}: {what}"
