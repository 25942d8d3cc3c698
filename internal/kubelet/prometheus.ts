/**
 * The Prometheus text exposition format (version 0.0.4) as the Go client writes it, which is what the
 * kubelet serves and what scrapers of a kubelet are tested against: families sorted by name, label
 * pairs sorted by name, metrics sorted by their label values, floats in Go's shortest `%g` form,
 * families without a metric left out. Plus a small registry of counters, gauges and histograms.
 */

export const PROMETHEUS_TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export type Labels = Readonly<Record<string, string>>;

export interface ValueMetric {
  labels: Labels;
  value: number;
  /** Milliseconds since the epoch; written after the value when present. */
  timestampMs?: number;
}

export interface HistogramMetric {
  labels: Labels;
  /** Cumulative counts per upper bound, ascending; the +Inf bucket is added when missing. */
  buckets: { upperBound: number; count: number }[];
  sum: number;
  count: number;
}

export type MetricFamily =
  | { name: string; help: string; type: "counter" | "gauge"; metrics: ValueMetric[] }
  | { name: string; help: string; type: "histogram"; metrics: HistogramMetric[] };

/**
 * A float as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it: the shortest digits that read back
 * exactly, in exponent form (two-digit exponent at least) when the exponent is below -4 or at least 6.
 */
export function formatFloat(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  if (value === 0) return "0";
  // toExponential() without a precision gives the shortest round-tripping digits, as Go's shortest mode does.
  const [mantissa = "", exponentText = "0"] = value.toExponential().split("e");
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= 6) {
    const sign = exponent < 0 ? "-" : "+";
    return `${mantissa}e${sign}${String(Math.abs(exponent)).padStart(2, "0")}`;
  }
  // In this range JavaScript's own shortest form is plain decimal notation with the same digits.
  return String(value);
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function escapeHelp(help: string): string {
  return help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function sortedLabelNames(labels: Labels): string[] {
  return Object.keys(labels).sort();
}

function labelText(labels: Labels, extra?: [string, string]): string {
  const pairs = sortedLabelNames(labels).map((name) => `${name}="${escapeLabelValue(labels[name] ?? "")}"`);
  if (extra) pairs.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
  return pairs.length === 0 ? "" : `{${pairs.join(",")}}`;
}

/** The Go client's order: label values compared pair by pair, in label-name order. */
function compareLabels(a: Labels, b: Labels): number {
  const names = [...new Set([...sortedLabelNames(a), ...sortedLabelNames(b)])].sort();
  for (const name of names) {
    const left = a[name] ?? "";
    const right = b[name] ?? "";
    if (left !== right) return left < right ? -1 : 1;
  }
  return 0;
}

function renderFamily(family: MetricFamily): string {
  const lines = [`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`];
  if (family.type === "histogram") {
    for (const metric of [...family.metrics].sort((a, b) => compareLabels(a.labels, b.labels))) {
      const buckets = [...metric.buckets];
      if (buckets.at(-1)?.upperBound !== Infinity) buckets.push({ upperBound: Infinity, count: metric.count });
      for (const bucket of buckets) {
        lines.push(`${family.name}_bucket${labelText(metric.labels, ["le", formatFloat(bucket.upperBound)])} ${formatFloat(bucket.count)}`);
      }
      lines.push(`${family.name}_sum${labelText(metric.labels)} ${formatFloat(metric.sum)}`);
      lines.push(`${family.name}_count${labelText(metric.labels)} ${formatFloat(metric.count)}`);
    }
  } else {
    const metrics = [...family.metrics].sort((a, b) => compareLabels(a.labels, b.labels) || (a.timestampMs ?? 0) - (b.timestampMs ?? 0));
    for (const metric of metrics) {
      const timestamp = metric.timestampMs === undefined ? "" : ` ${Math.trunc(metric.timestampMs)}`;
      lines.push(`${family.name}${labelText(metric.labels)} ${formatFloat(metric.value)}${timestamp}`);
    }
  }
  return lines.join("\n") + "\n";
}

export function renderFamilies(families: readonly MetricFamily[]): string {
  return [...families]
    .filter((family) => family.metrics.length > 0)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map(renderFamily)
    .join("");
}

/** Children keyed by their label values in the family's label order. */
function childKey(labelNames: readonly string[], labels: Labels): string {
  return JSON.stringify(labelNames.map((name) => labels[name] ?? ""));
}

function checkLabels(name: string, labelNames: readonly string[], labels: Labels): void {
  const given = Object.keys(labels);
  if (given.length !== labelNames.length || given.some((label) => !labelNames.includes(label))) {
    // A programming error in vks, not a runtime condition: fail loudly where it happens.
    throw new Error(`metric ${name} takes labels [${labelNames.join(", ")}], got [${given.join(", ")}]`);
  }
}

export class Counter {
  private readonly values = new Map<string, ValueMetric>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[] = [],
  ) {}

  inc(labels: Labels = {}, amount = 1): void {
    if (amount < 0) throw new Error(`counter ${this.name} cannot decrease`);
    checkLabels(this.name, this.labelNames, labels);
    const key = childKey(this.labelNames, labels);
    const metric = this.values.get(key) ?? { labels: { ...labels }, value: 0 };
    metric.value += amount;
    this.values.set(key, metric);
  }

  get(labels: Labels = {}): number {
    return this.values.get(childKey(this.labelNames, labels))?.value ?? 0;
  }

  family(): MetricFamily {
    return { name: this.name, help: this.help, type: "counter", metrics: [...this.values.values()] };
  }
}

export class Gauge {
  private readonly values = new Map<string, ValueMetric>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[] = [],
  ) {}

  set(labels: Labels, value: number): void {
    checkLabels(this.name, this.labelNames, labels);
    this.values.set(childKey(this.labelNames, labels), { labels: { ...labels }, value });
  }

  inc(labels: Labels = {}, amount = 1): void {
    this.set(labels, this.get(labels) + amount);
  }

  dec(labels: Labels = {}, amount = 1): void {
    this.set(labels, this.get(labels) - amount);
  }

  get(labels: Labels = {}): number {
    return this.values.get(childKey(this.labelNames, labels))?.value ?? 0;
  }

  /** Replaces every child: for counts by state, where a state that no longer occurs must disappear. */
  replaceAll(entries: { labels: Labels; value: number }[]): void {
    this.values.clear();
    for (const entry of entries) this.set(entry.labels, entry.value);
  }

  family(): MetricFamily {
    return { name: this.name, help: this.help, type: "gauge", metrics: [...this.values.values()] };
  }
}

/** The Go client's default buckets, in seconds: they suit request latencies. */
export const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

export class Histogram {
  private readonly values = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[] = [],
    readonly upperBounds: readonly number[] = DEFAULT_BUCKETS,
  ) {}

  observe(labels: Labels, value: number): void {
    checkLabels(this.name, this.labelNames, labels);
    const key = childKey(this.labelNames, labels);
    const child = this.values.get(key) ?? { labels: { ...labels }, counts: this.upperBounds.map(() => 0), sum: 0, count: 0 };
    this.upperBounds.forEach((bound, index) => {
      if (value <= bound) child.counts[index] = (child.counts[index] ?? 0) + 1;
    });
    child.sum += value;
    child.count += 1;
    this.values.set(key, child);
  }

  family(): MetricFamily {
    return {
      name: this.name,
      help: this.help,
      type: "histogram",
      metrics: [...this.values.values()].map((child) => ({
        labels: child.labels,
        buckets: this.upperBounds.map((upperBound, index) => ({ upperBound, count: child.counts[index] ?? 0 })),
        sum: child.sum,
        count: child.count,
      })),
    };
  }
}

type Collector = () => MetricFamily[];

/** Metrics kept in memory plus collectors read at scrape time (process figures, counts from elsewhere). */
export class MetricsRegistry {
  private readonly metrics = new Map<string, Counter | Gauge | Histogram>();
  private readonly collectors: Collector[] = [];

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.add(new Gauge(name, help, labelNames));
  }

  histogram(name: string, help: string, labelNames: readonly string[] = [], upperBounds: readonly number[] = DEFAULT_BUCKETS): Histogram {
    return this.add(new Histogram(name, help, labelNames, upperBounds));
  }

  /** `collect` runs at every scrape; what it returns is rendered with the rest. */
  addCollector(collect: Collector): void {
    this.collectors.push(collect);
  }

  render(): string {
    return renderFamilies([...[...this.metrics.values()].map((metric) => metric.family()), ...this.collectors.flatMap((collect) => collect())]);
  }

  private add<T extends Counter | Gauge | Histogram>(metric: T): T {
    if (this.metrics.has(metric.name)) throw new Error(`metric ${metric.name} is registered twice`);
    this.metrics.set(metric.name, metric);
    return metric;
  }
}
