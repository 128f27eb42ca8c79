"""A small metrics registry and its Prometheus text exposition (format 0.0.4).

How this works. Counters and histograms are plain dicts keyed by the tuple of label values;
the request path updates them once per stream, at its end, with no lock (one event loop per
worker owns them) and no object per update beyond the dict entry. A histogram keeps one count
per bucket (not cumulative) and cumulates when rendered. Gauges are not stored: a `GaugeFamily`
calls its collector at scrape time, so live state (connections, breakers, pools) is read where
it is kept instead of being mirrored on every change.

Label cardinality is bounded per family (``MAX_SERIES``): past it, new label sets are counted
under one series whose label values are all ``"other"``, and ``dropped_series`` says how many
updates went there. prometheus_client was measured against this (docs/observability.md): it
takes a lock and builds a child object per labelled update, several times the cost here.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Final

Labels = tuple[str, ...]
MAX_SERIES: Final = 2_000  # label sets per family; beyond it updates go to the "other" series
OTHER: Final = "other"
CONTENT_TYPE: Final = b"text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if value != value:
        return "NaN"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _label_text(names: Sequence[str], values: Labels, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Family:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labels: Sequence[str]) -> None:
        self.name = name
        self.help = help_text
        self.labels = tuple(labels)
        self.dropped_series = 0
        self.max_series = MAX_SERIES  # the registry sets its own bound on add

    def header(self) -> str:
        return f"# HELP {self.name} {_escape(self.help)}\n# TYPE {self.name} {self.kind}\n"

    def render(self, out: list[str]) -> None:
        raise NotImplementedError

    def snapshot(self) -> FamilySnapshot:
        raise NotImplementedError


class Counter(_Family):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        if not name.endswith("_total"):
            raise ValueError(f"a counter's name ends in _total: {name}")
        super().__init__(name, help_text, labels)
        # Without labels the one series exists from the start (at 0), as Prometheus expects.
        self.values: dict[Labels, float] = {} if self.labels else {(): 0.0}

    def inc(self, labels: Labels = (), amount: float = 1.0) -> None:
        values = self.values
        current = values.get(labels)
        if current is None:
            if len(values) >= self.max_series:
                self.dropped_series += 1
                labels = (OTHER,) * len(self.labels)
                current = values.get(labels, 0.0)
            else:
                current = 0.0
        values[labels] = current + amount

    def render(self, out: list[str]) -> None:
        out.append(self.header())
        for labels, value in self.values.items():
            out.append(f"{self.name}{_label_text(self.labels, labels)} {_number(value)}\n")

    def snapshot(self) -> FamilySnapshot:
        return FamilySnapshot(self, "counter", samples=list(self.values.items()))


class Histogram(_Family):
    kind = "histogram"

    def __init__(
        self, name: str, help_text: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> None:
        super().__init__(name, help_text, labels)
        self.bounds = tuple(sorted(buckets))
        # Per label set: [count in each bucket..., count above the last bound, sum]
        self.values: dict[Labels, list[float]] = {}
        if not self.labels:
            self.values[()] = [0.0] * (len(self.bounds) + 2)

    def observe(self, labels: Labels, value: float) -> None:
        row = self.values.get(labels)
        if row is None:
            if len(self.values) >= self.max_series:
                self.dropped_series += 1
                labels = (OTHER,) * len(self.labels)
                row = self.values.get(labels)
            if row is None:
                row = self.values[labels] = [0.0] * (len(self.bounds) + 2)
        row[bisect_left(self.bounds, value)] += 1
        row[-1] += value

    def series(self, labels: Labels) -> list[float] | None:
        """The row of exactly ``labels`` (made if there is room), for `observe_row`; None
        when the family is full and ``labels`` is new (`observe` then counts the update
        under "other"). A row stays valid for the family's life."""
        row = self.values.get(labels)
        if row is None and len(self.values) < self.max_series:
            row = self.values[labels] = [0.0] * (len(self.bounds) + 2)
        return row

    def observe_row(self, row: list[float], value: float) -> None:
        row[bisect_left(self.bounds, value)] += 1
        row[-1] += value

    def render(self, out: list[str]) -> None:
        _render_histogram(out, self, self.labels, self.bounds, self.values)

    def snapshot(self) -> FamilySnapshot:
        rows = {labels: list(row) for labels, row in self.values.items()}
        return FamilySnapshot(self, "histogram", bounds=self.bounds, rows=rows)

    def project(self, keep: Sequence[int]) -> dict[Labels, list[float]]:
        """The rows added up over the labels not in ``keep`` (indexes into ``labels``)."""
        out: dict[Labels, list[float]] = {}
        for labels, row in self.values.items():
            key = tuple(labels[i] for i in keep)
            into = out.get(key)
            if into is None:
                out[key] = list(row)
            else:
                for i, v in enumerate(row):
                    into[i] += v
        return out

    def counts(self, keep: Sequence[int]) -> GaugeSamples:
        """Observations per label set, over the labels in ``keep`` (a counter's samples)."""
        return [(k, sum(row[:-1])) for k, row in self.project(keep).items()]


def _render_histogram(
    out: list[str],
    family: _Family,
    names: Sequence[str],
    bounds: Sequence[float],
    values: dict[Labels, list[float]],
) -> None:
    out.append(family.header())
    name = family.name
    for labels, row in values.items():
        running = 0.0
        for bound, count in zip((*bounds, math.inf), row, strict=False):
            running += count
            le = f'le="{"+Inf" if bound == math.inf else repr(float(bound))}"'
            out.append(f"{name}_bucket{_label_text(names, labels, le)} {_number(running)}\n")
        text = _label_text(names, labels)
        out.append(f"{name}_sum{text} {_number(row[-1])}\n")
        out.append(f"{name}_count{text} {_number(running)}\n")


class HistogramView(_Family):
    """A histogram rendered over some of another histogram's labels: one observation per
    request updates the source, and each view adds it up differently at scrape time."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, source: Histogram, labels: Sequence[str]):
        super().__init__(name, help_text, labels)
        self._source = source
        self._keep = [source.labels.index(n) for n in self.labels]

    def render(self, out: list[str]) -> None:
        src = self._source
        _render_histogram(out, self, self.labels, src.bounds, src.project(self._keep))

    def snapshot(self) -> FamilySnapshot:
        src = self._source
        return FamilySnapshot(self, "histogram", bounds=src.bounds, rows=src.project(self._keep))


GaugeSamples = Iterable[tuple[Labels, float]]


class FamilySnapshot:
    """One family's values at one moment, for exporters other than the text exposition
    (`proxy.observability.otlp_metrics`). ``kind``: "counter", "gauge" or "histogram";
    ``samples`` for the first two, ``rows`` (a histogram row per label set: the count in
    each bucket, the count above the last bound, the sum) and ``bounds`` for histograms."""

    __slots__ = ("bounds", "help", "kind", "labels", "name", "rows", "samples")

    def __init__(
        self,
        family: _Family,
        kind: str,
        samples: list[tuple[Labels, float]] | None = None,
        bounds: tuple[float, ...] = (),
        rows: dict[Labels, list[float]] | None = None,
    ) -> None:
        self.name = family.name
        self.help = family.help
        self.labels = family.labels
        self.kind = kind
        self.samples = samples if samples is not None else []
        self.bounds = bounds
        self.rows = rows if rows is not None else {}


class GaugeFamily(_Family):
    """A gauge (or a counter kept elsewhere, ``kind="counter"``) read at scrape time."""

    def __init__(
        self,
        name: str,
        help_text: str,
        collect: Callable[[], GaugeSamples],
        labels: Sequence[str] = (),
        kind: str = "gauge",
    ) -> None:
        super().__init__(name, help_text, labels)
        self.kind = kind
        self._collect = collect

    def render(self, out: list[str]) -> None:
        out.append(self.header())
        for labels, value in self._collect():
            out.append(f"{self.name}{_label_text(self.labels, labels)} {_number(value)}\n")

    def snapshot(self) -> FamilySnapshot:
        return FamilySnapshot(self, self.kind, samples=list(self._collect()))


class Registry:
    """The families of one worker, rendered in registration order."""

    def __init__(self, max_series: int = MAX_SERIES) -> None:
        self.max_series = max_series
        self._families: dict[str, _Family] = {}
        self._hidden: list[_Family] = []  # sources of views: their dropped series still count

    def add(self, family: _Family) -> None:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} registered twice")
        family.max_series = self.max_series
        self._families[family.name] = family

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Counter:
        c = Counter(name, help_text, labels)
        self.add(c)
        return c

    def histogram(
        self, name: str, help_text: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> Histogram:
        h = Histogram(name, help_text, buckets, labels)
        self.add(h)
        return h

    def hidden_histogram(
        self, name: str, buckets: Sequence[float], labels: Sequence[str]
    ) -> Histogram:
        """A histogram only `HistogramView` families and collectors read (not rendered)."""
        h = Histogram(name, "", buckets, labels)
        h.max_series = self.max_series
        self._hidden.append(h)
        return h

    def gauge(
        self,
        name: str,
        help_text: str,
        collect: Callable[[], GaugeSamples],
        labels: Sequence[str] = (),
        kind: str = "gauge",
    ) -> GaugeFamily:
        g = GaugeFamily(name, help_text, collect, labels, kind)
        self.add(g)
        return g

    def snapshot(self) -> list[FamilySnapshot]:
        """Every rendered family's values now (read on the loop that updates them)."""
        return [family.snapshot() for family in self._families.values()]

    def render(self) -> bytes:
        out: list[str] = []
        for family in self._families.values():
            family.render(out)
        families = [*self._families.values(), *self._hidden]
        dropped = [(f.name, f.dropped_series) for f in families if f.dropped_series]
        if dropped:
            out.append(
                "# HELP junction_metric_series_dropped_total Updates counted under the "
                '"other" series because a family reached its series bound.\n'
                "# TYPE junction_metric_series_dropped_total counter\n"
            )
            for name, n in dropped:
                out.append(f'junction_metric_series_dropped_total{{metric="{name}"}} {n}\n')
        return "".join(out).encode()
