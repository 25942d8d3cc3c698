/** The Prometheus text format as the Go client writes it, and the small metrics registry. */
import { describe, expect, test } from "bun:test";
import { MetricsRegistry, formatFloat, renderFamilies } from "../../internal/kubelet/prometheus.ts";

describe("formatFloat matches Go's strconv.FormatFloat(v, 'g', -1, 64)", () => {
  const cases: [number, string][] = [
    [0, "0"],
    [1, "1"],
    [-1, "-1"],
    [10, "10"],
    [6197.005020909, "6197.005020909"],
    [40.384910049, "40.384910049"],
    [999999, "999999"],
    [1e6, "1e+06"],
    [17391616, "1.7391616e+07"],
    [1137475584, "1.137475584e+09"],
    [1624396248.3020916, "1.6243962483020916e+09"],
    [1e21, "1e+21"],
    [0.0001, "0.0001"],
    [0.00001, "1e-05"],
    [0.25, "0.25"],
    [-2.5e-7, "-2.5e-07"],
    [1.5e300, "1.5e+300"],
    [Number.NaN, "NaN"],
    [Infinity, "+Inf"],
    [-Infinity, "-Inf"],
  ];
  for (const [value, expected] of cases) {
    test(`${expected}`, () => expect(formatFloat(value)).toBe(expected));
  }
});

describe("rendering", () => {
  test("families sorted by name, label pairs by name, metrics by label values; empty families left out", () => {
    const text = renderFamilies([
      { name: "zeta", help: "last", type: "gauge", metrics: [{ labels: {}, value: 1 }] },
      { name: "empty", help: "never shown", type: "counter", metrics: [] },
      {
        name: "alpha_total",
        help: "with \\ and\nnewline",
        type: "counter",
        metrics: [
          { labels: { pod: "b", namespace: "x" }, value: 2, timestampMs: 1624396278302.9 },
          { labels: { pod: "a", namespace: "y" }, value: 3 },
          { labels: { pod: "a", namespace: "x" }, value: 1.5e7 },
        ],
      },
    ]);
    expect(text).toBe(
      [
        "# HELP alpha_total with \\\\ and\\nnewline",
        "# TYPE alpha_total counter",
        'alpha_total{namespace="x",pod="a"} 1.5e+07',
        'alpha_total{namespace="x",pod="b"} 2 1624396278302',
        'alpha_total{namespace="y",pod="a"} 3',
        "# HELP zeta last",
        "# TYPE zeta gauge",
        "zeta 1",
        "",
      ].join("\n"),
    );
  });

  test("label values are escaped", () => {
    const text = renderFamilies([{ name: "m", help: "h", type: "gauge", metrics: [{ labels: { v: 'a"b\\c\nd' }, value: 0 }] }]);
    expect(text).toContain('m{v="a\\"b\\\\c\\nd"} 0');
  });
});

describe("registry", () => {
  test("counters, gauges, histograms and collectors", () => {
    const registry = new MetricsRegistry();
    const requests = registry.counter("vks_http_requests_total", "Requests.", ["path_class", "code"]);
    const sessions = registry.gauge("vks_sessions", "Sessions.", ["kind"]);
    const latency = registry.histogram("vks_latency_seconds", "Latency.", ["path_class"], [0.1, 1]);
    registry.addCollector(() => [{ name: "process_start_time_seconds", help: "Start.", type: "gauge", metrics: [{ labels: {}, value: 1.7e9 }] }]);

    requests.inc({ path_class: "stats", code: "200" });
    requests.inc({ code: "200", path_class: "stats" }, 2);
    requests.inc({ path_class: "exec", code: "101" });
    sessions.inc({ kind: "exec" });
    sessions.inc({ kind: "exec" });
    sessions.dec({ kind: "exec" });
    latency.observe({ path_class: "stats" }, 0.05);
    latency.observe({ path_class: "stats" }, 0.5);
    latency.observe({ path_class: "stats" }, 3);

    expect(requests.get({ path_class: "stats", code: "200" })).toBe(3);
    expect(registry.render()).toBe(
      [
        "# HELP process_start_time_seconds Start.",
        "# TYPE process_start_time_seconds gauge",
        "process_start_time_seconds 1.7e+09",
        "# HELP vks_http_requests_total Requests.",
        "# TYPE vks_http_requests_total counter",
        'vks_http_requests_total{code="101",path_class="exec"} 1',
        'vks_http_requests_total{code="200",path_class="stats"} 3',
        "# HELP vks_latency_seconds Latency.",
        "# TYPE vks_latency_seconds histogram",
        'vks_latency_seconds_bucket{path_class="stats",le="0.1"} 1',
        'vks_latency_seconds_bucket{path_class="stats",le="1"} 2',
        'vks_latency_seconds_bucket{path_class="stats",le="+Inf"} 3',
        'vks_latency_seconds_sum{path_class="stats"} 3.55',
        'vks_latency_seconds_count{path_class="stats"} 3',
        "# HELP vks_sessions Sessions.",
        "# TYPE vks_sessions gauge",
        'vks_sessions{kind="exec"} 1',
        "",
      ].join("\n"),
    );
  });

  test("wrong labels, a decreasing counter and a second registration are programming errors", () => {
    const registry = new MetricsRegistry();
    const counter = registry.counter("c_total", "c", ["a"]);
    expect(() => counter.inc({ b: "x" })).toThrow(/takes labels \[a\]/);
    expect(() => counter.inc({ a: "x" }, -1)).toThrow(/cannot decrease/);
    expect(() => registry.gauge("c_total", "again")).toThrow(/registered twice/);
  });

  test("replaceAll drops children that are gone", () => {
    const registry = new MetricsRegistry();
    const pods = registry.gauge("vks_pods", "Pods.", ["phase"]);
    pods.replaceAll([{ labels: { phase: "Pending" }, value: 1 }]);
    pods.replaceAll([{ labels: { phase: "Running" }, value: 2 }]);
    expect(registry.render()).not.toContain("Pending");
    expect(registry.render()).toContain('vks_pods{phase="Running"} 2');
  });
});
