/**
 * Fuzz: generated manifests (YAML and JSON) with deep nesting, 10 MB strings, NUL and control bytes,
 * unicode and `%` `$` `\` newlines in names, env, args and images, huge and negative numbers, wrong kinds
 * and wrong types (issue 9 §4). Every manifest must either run or be refused with exit 65 naming a field;
 * never exit 70 (a throw that is not a VksError), never a unit for a refused one, never an argument or
 * environment value changed on its way to the process. Prints figures; never asserts.
 *
 * Two paths, same generator:
 *   in-process  every manifest through what `vks pod up` runs before it starts anything: parse
 *               (parseManifestContents), normalize + validatePod, podWarnings, env references, image
 *               reference, planPod. A throw that is not a VksError with exit 65 is a finding (exit 70 or a
 *               wrong code in the binary).
 *   binary      a sample through dist/vks and real systemd (inside test/sandbox.sh): runnable manifests
 *               whose container dumps its argv and environment (hex, so every byte survives) are run with
 *               `vks pod up` in the foreground; what the process saw is compared with what the manifest
 *               says after Kubernetes' $(VAR) expansion. Manifests refused in-process are run too: exit
 *               must be 65 and no vks unit may appear.
 *
 * `bun bench/fuzz.ts --count 10000 --sample 300 --seed S` (the seed is printed; the same seed generates the
 * same manifests). --sample 0 skips the binary (no systemd needed).
 */
import type { V1Pod } from "@kubernetes/client-node";
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { stringify as yamlStringify } from "yaml";
import { ValidationError, VksError } from "../internal/errors.ts";
import type { ResolvedImage } from "../internal/image/types.ts";
import { parseImageReference } from "../internal/image/ref.ts";
import { checkEnvReferences, fetchEnvObjects } from "../internal/pod/env-sources.ts";
import { manifestObjectSource } from "../internal/pod/manifest-objects.ts";
import { parseManifestContents } from "../internal/pod/manifest.ts";
import { executablesNeeded, planPod } from "../internal/pod/plan.ts";
import { podWarnings, validatePod } from "../internal/pod/validate.ts";
import { initialPods } from "../internal/pod/workloads.ts";
import { BusConnection } from "../internal/systemd/bus.ts";
import { seededRandom } from "../test/seeded-random.ts";

const { values: flags } = parseArgs({
  options: {
    count: { type: "string", default: "10000" },
    sample: { type: "string", default: "300" },
    seed: { type: "string" },
    "show-findings": { type: "string", default: "20" },
  },
});
const COUNT = Number(flags.count);
const SAMPLE = Number(flags.sample);
const SEED = flags.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(flags.seed);
const SHOW = Number(flags["show-findings"]);
const VKS = resolve(import.meta.dir, "../dist/vks");
const SYSTEMD = { destination: "org.freedesktop.systemd1", path: "/org/freedesktop/systemd1", interface: "org.freedesktop.systemd1.Manager" };

// ---------------------------------------------------------------------------------------------------
// generator


class Gen {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = seededRandom(seed);
  }
  float(): number {
    return this.next();
  }
  int(low: number, high: number): number {
    return Math.floor(low + this.next() * (high - low));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length)] as T;
  }
}

const NASTY = [
  "", " ", "a b", "$HOME", "${HOME}", "$(A)", "$(UNDEFINED)", "$$", "$$(A)", "$(", "$)", "$", "%h", "%%", "%", "%n%i",
  "\\", "\\\\", "\\n", "\n", "\r\n", "\t", "\0", "a\0b", "\x01", "\x07", "\x1b[31m", "\x7f", "ünïcödé ✓", "日本語", "🙂",
  "\u202e", "\ufeff", "\u2028", "'", '"', ";", "&&", "|", "`id`", "--help", "-", "..", "/", "~", "*", "?", "[a]", "{a,b}",
  "#comment", "key: value", "- item", "null", "true", "yes", "no", "0x1F", "1e3", "0644", ".inf", "-.nan", "<<", "&anchor",
  "*alias", "!!str", "---", "...", "{{x}}", "%(x)s", "${A:-b}", "$((1+1))", "\\$", "\\%", "@", "=", "A=B", "a".repeat(300),
];
const NUMBERS: unknown[] = [
  0, -1, 1, 2, 30, -30, 2 ** 31, -(2 ** 31), 2 ** 31 - 1, 2 ** 53 + 2, -(2 ** 53) - 2, 1e308, -1e308, 1.5, -0.5, 65536, 99999999999,
  "30", "1e400", "999999999999999999999999999999", "-0", "", null, true,
];

function nastyString(g: Gen): string {
  let out = "";
  const pieces = g.int(1, 4);
  for (let i = 0; i < pieces; i++) {
    if (g.chance(0.7)) out += g.pick(NASTY);
    else {
      const length = g.int(1, 8);
      for (let j = 0; j < length; j++) {
        const range = g.pick([[0x20, 0x7f], [0, 0x20], [0x80, 0x800], [0x3000, 0x9fff], [0x1f300, 0x1f6ff], [0xd800, 0xdfff]] as const);
        out += String.fromCodePoint(g.int(range[0], range[1]));
      }
    }
  }
  return out;
}

/** Strings that make good names: mostly valid DNS labels, sometimes not. */
function name(g: Gen, prefix: string): string {
  if (g.chance(0.8)) return `${prefix}${g.int(0, 1_000_000)}`;
  return g.chance(0.5) ? nastyString(g) : `${prefix}-${nastyString(g)}`;
}

function envName(g: Gen, index: number): string {
  if (g.chance(0.75)) return `V${index}_${g.int(0, 100)}`;
  return g.pick(["A", "_", "1A", "A-B", "A.B", "a b", "", "A=B", "ü", "PATH", "HOME", "VKS_EXEC_0_PATH", "LD_PRELOAD", nastyString(g)]);
}

const IMAGES = ["/bin/sh", "/bin/true", "/bin/sleep", "/usr/bin/env", "/no/such/binary", "relative/path", "/bin/../bin/true", "/bin/sh\n", "/tmp/a b"];

interface GeneratedPod {
  object: Record<string, unknown>;
  /** Set for runnable pods: the args and env as written, for comparison with what the process saw. */
  runnable?: { args: string[]; env: { name: string; value: string }[] };
}

/**
 * The container that dumps what it was given: each argument, then the environment, in hex. Absolute paths
 * and no stderr: the generated env may set PATH or LD_PRELOAD to anything (the dynamic loader's complaint
 * about the latter reaches the log before the script runs, hence the start marker).
 */
const DUMP_SCRIPT = `exec 2>/dev/null; echo +++; for a in "$@"; do printf '%s' "$a" | /usr/bin/od -An -tx1 -v | /usr/bin/tr -d ' \\n'; echo; done; echo ---; /usr/bin/env -0 | /usr/bin/od -An -tx1 -v | /usr/bin/tr -d ' \\n'; echo`;

function genPod(g: Gen, index: number, runnable: boolean): GeneratedPod {
  const args = Array.from({ length: g.int(0, 6) }, () => nastyString(g));
  const env = Array.from({ length: g.int(0, 5) }, (_, i) => ({ name: envName(g, i), value: nastyString(g) }));
  const container: Record<string, unknown> = runnable
    ? { name: "c", image: "/bin/sh", command: ["/bin/sh", "-c", DUMP_SCRIPT, "fuzz"], args, env }
    : {
        name: g.chance(0.85) ? `c${g.int(0, 100)}` : nastyString(g),
        image: g.chance(0.7) ? g.pick(IMAGES) : nastyString(g),
        ...(g.chance(0.5) ? { command: [g.pick(IMAGES), ...args.slice(0, 2)] } : {}),
        ...(g.chance(0.6) ? { args } : {}),
        ...(g.chance(0.6) ? { env } : {}),
        ...(g.chance(0.1) ? { workingDir: g.chance(0.5) ? "/tmp" : nastyString(g) } : {}),
      };
  const spec: Record<string, unknown> = {
    restartPolicy: runnable ? "Never" : g.pick(["Always", "OnFailure", "Never", "Sometimes", ""]),
    containers: [container],
  };
  if (g.chance(0.3)) spec["terminationGracePeriodSeconds"] = g.pick(NUMBERS);
  if (!runnable && g.chance(0.2)) spec["activeDeadlineSeconds"] = g.pick(NUMBERS);
  if (!runnable && g.chance(0.15)) spec["initContainers"] = [{ name: `i${g.int(0, 9)}`, image: "/bin/true" }];
  if (!runnable && g.chance(0.1)) (container as Record<string, unknown>)["ports"] = [{ containerPort: g.pick(NUMBERS), protocol: g.pick(["TCP", "UDP", "SCTP", "HTTP"]) }];
  const metadata: Record<string, unknown> = { name: runnable ? `fuzz-${index}` : name(g, "fuzz-"), namespace: "fuzz" };
  if (g.chance(0.2)) metadata["labels"] = { [g.chance(0.7) ? "app" : nastyString(g)]: g.chance(0.7) ? "x" : nastyString(g) };
  if (g.chance(0.2)) metadata["annotations"] = { note: nastyString(g) };
  if (g.chance(0.05) && !runnable) metadata["namespace"] = nastyString(g);
  const object: Record<string, unknown> = { apiVersion: "v1", kind: "Pod", metadata, spec };
  return { object, ...(runnable ? { runnable: { args, env } } : {}) };
}

/** Replaces one random value somewhere in `root` (objects and arrays walked at random). */
function mutateSomewhere(g: Gen, root: Record<string, unknown>, replacement: () => unknown): void {
  let node: unknown = root;
  for (let depth = 0; depth < 6; depth++) {
    if (node === null || typeof node !== "object") return;
    const keys = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
    if (keys.length === 0) return;
    const key = g.pick(keys as (string | number)[]);
    const child = (node as Record<string | number, unknown>)[key];
    if (child === null || typeof child !== "object" || g.chance(0.3)) {
      (node as Record<string | number, unknown>)[key] = replacement();
      return;
    }
    node = child;
  }
}

interface Generated {
  text: string;
  format: "yaml" | "json" | "raw";
  mutations: string[];
  runnable?: GeneratedPod["runnable"];
}

function generate(g: Gen, index: number, runnable: boolean): Generated {
  const pod = genPod(g, index, runnable);
  const mutations: string[] = [];
  /** Nesting depth written into the text (serializers themselves recurse, so it is not built as objects). */
  let deep = 0;
  if (!runnable) {
    const count = g.int(0, 4);
    for (let i = 0; i < count; i++) {
      let kind = g.pick(["string", "number", "type", "kind", "deep", "huge", "drop", "apiVersion", "unknown-field", "list"]);
      // Deep and huge ones cost a hundred times a plain one each: a quarter as many keeps 10,000 in minutes.
      if ((kind === "deep" || kind === "huge") && g.chance(0.75)) kind = "string";
      mutations.push(kind);
      if (kind === "string") mutateSomewhere(g, pod.object, () => nastyString(g));
      else if (kind === "number") mutateSomewhere(g, pod.object, () => g.pick(NUMBERS));
      else if (kind === "type") mutateSomewhere(g, pod.object, () => g.pick<unknown>([[], {}, null, true, 0, [1, 2], { x: 1 }]));
      else if (kind === "kind") pod.object["kind"] = g.pick<unknown>(["Deployment", "Service", "Job", "ConfigMap", "Secret", "List", "pod", "", 7, null, ["Pod"]]);
      else if (kind === "apiVersion") pod.object["apiVersion"] = g.pick<unknown>(["v2", "apps/v1", "", 1, null]);
      // Past a few thousand levels every depth fails alike (the parser's stack), and slowly: 100,000 is rare.
      else if (kind === "deep") deep = g.chance(0.02) ? 100_000 : g.pick([50, 500, 2000, 10_000]);
      else if (kind === "huge") mutateSomewhere(g, pod.object, () => "x".repeat(g.chance(0.1) ? 1_000_000 : 200_000));
      else if (kind === "drop") {
        const spec = pod.object["spec"] as Record<string, unknown> | undefined;
        if (spec && g.chance(0.5)) delete spec["containers"];
        else delete pod.object["metadata"];
      } else if (kind === "unknown-field") mutateSomewhere(g, pod.object, () => ({ [nastyString(g)]: nastyString(g) }));
      else if (kind === "list") {
        const list = { apiVersion: "v1", kind: "List", items: [structuredClone(pod.object), g.chance(0.5) ? structuredClone(pod.object) : { kind: "Pod" }] };
        for (const key of Object.keys(pod.object)) delete pod.object[key];
        Object.assign(pod.object, list);
      }
    }
  }
  const format = runnable ? (g.chance(0.5) ? "yaml" : "json") : g.pick(["yaml", "yaml", "json", "raw"] as const);
  let text: string;
  try {
    text = format === "json" ? JSON.stringify(pod.object) : yamlStringify(pod.object, { lineWidth: 0 });
  } catch {
    // Too deep for the serializer itself: write the nesting by hand.
    text = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"deep"},"spec":{"containers":[{"name":"c","image":"/bin/true"}]},"extra":${"[".repeat(20000)}${"]".repeat(20000)}}`;
    mutations.push("deep-by-hand");
  }
  if (deep > 0) {
    const [open, close] = g.chance(0.5) ? ["[", "]"] : ['{"a":', "}"];
    const nest = `${open.repeat(deep)}"x"${close.repeat(deep)}`;
    const where = g.pick(["top", "args", "annotation", "spec"]);
    mutations.push(`deep:${deep}:${where}`);
    const object = { apiVersion: "v1", kind: "Pod", metadata: { name: "deep", annotations: { a: "PLACE" } }, spec: { containers: [{ name: "c", image: "/bin/true", args: ["PLACE"] }] } };
    const base = JSON.stringify(object);
    if (where === "top") text = base.replace(/}$/, `,"deep":${nest}}`);
    else if (where === "args") text = base.replace('["PLACE"]', nest);
    else if (where === "annotation") text = base.replace('"a":"PLACE"', `"a":${nest}`);
    else text = base.replace('"spec":{', `"spec":{"affinity":${nest},`);
  }
  if (format === "raw") {
    const raw = g.chance(0.005) ? "10mb" : g.pick(["nul", "truncate", "bytes", "alias-bomb", "dup-key", "tabs"]);
    mutations.push(`raw:${raw}`);
    if (raw === "nul") text = text.slice(0, text.length / 2) + "\0" + text.slice(text.length / 2);
    else if (raw === "truncate") text = text.slice(0, g.int(0, text.length));
    else if (raw === "bytes") {
      const at = g.int(0, text.length);
      text = text.slice(0, at) + String.fromCharCode(g.int(0, 32)) + text.slice(at);
    } else if (raw === "alias-bomb") {
      text = `a: &a ["x","x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\napiVersion: v1\nkind: Pod\nmetadata: {name: bomb}\nspec: {containers: [{name: c, image: /bin/true, args: *f}]}\n`;
    } else if (raw === "dup-key") text = `apiVersion: v1\nkind: Pod\nkind: Pod\nmetadata: {name: dup}\nspec: {containers: [{name: c, image: /bin/true}]}\n`;
    else if (raw === "tabs") text = text.replace(/ {2}/g, "\t");
    else text = `apiVersion: v1\nkind: Pod\nmetadata: {name: big}\nspec:\n  containers:\n  - name: c\n    image: /bin/true\n    args: ["${"y".repeat(10 * 1024 * 1024)}"]\n`;
  }
  return { text, format, mutations, ...(pod.runnable ? { runnable: pod.runnable } : {}) };
}

// ---------------------------------------------------------------------------------------------------
// in-process: what `vks pod up` runs before it starts anything

type Verdict = { kind: "accepted" } | { kind: "refused"; message: string } | { kind: "finding"; message: string };

/** A refusal must say where: a field path, a document, or the YAML position. */
function namesAField(err: VksError): boolean {
  if (err instanceof ValidationError) return err.problems.length > 0 && err.problems.every((problem) => problem.path !== "");
  // A YAML syntax error has no field: it names the position (file:line:column) instead.
  return /\b(spec|metadata|kind|apiVersion|items|data|binaryData|stringData|status)\b|document \d+|line \d+|\.yaml:\d+:\d+:/.test(err.message);
}

function fakeImage(reference: string): ResolvedImage {
  return {
    reference,
    entrypoint: reference.startsWith("/") ? [reference] : [`/usr/bin/${reference}`],
    cmd: [],
    environment: [],
    environmentFiles: [],
    runtimeDirectory: [],
    execStartPre: [],
    imageID: `path:${reference}`,
  };
}

async function inProcess(text: string): Promise<Verdict> {
  try {
    const source = "fuzz.yaml";
    const { pods, workloads, configMaps, secrets } = parseManifestContents(text, source);
    if (pods.length === 0 && workloads.length === 0) return { kind: "refused", message: "no pod in the manifest" };
    const all: V1Pod[] = [...pods, ...workloads.flatMap((workload) => initialPods(workload))];
    const objects = manifestObjectSource(configMaps, secrets, source);
    for (const raw of all) {
      const pod: V1Pod = structuredClone(raw);
      pod.metadata = { ...pod.metadata };
      pod.metadata.namespace ||= "default";
      pod.metadata.uid ||= "00000000-0000-4000-8000-000000000000";
      pod.metadata.creationTimestamp ??= new Date();
      validatePod(pod, source);
      podWarnings(pod);
      const envObjects = await fetchEnvObjects(pod, objects);
      checkEnvReferences(pod, envObjects);
      const images: Record<string, ResolvedImage> = {};
      const containers = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
      containers.forEach((container, i) => {
        parseImageReference(container.image ?? "", `spec.containers[${i}].image`);
        images[container.name] = fakeImage(container.image ?? "");
      });
      const executables: Record<string, string> = {};
      for (const needed of executablesNeeded(pod, images, envObjects)) executables[needed] = `/usr/bin/${needed}`;
      planPod({ pod, images, executables, logs: { mode: "file", directory: "/tmp/vks-fuzz-logs" }, hostIP: "10.0.0.1", envObjects, volumeDirectory: "/tmp/vks-fuzz-volumes", secretEnvDirectory: "/tmp/vks-fuzz-secrets", allocatable: { cpu: "2", memory: "4Gi", "ephemeral-storage": "10Gi" } });
    }
    return { kind: "accepted" };
  } catch (err) {
    if (err instanceof VksError) {
      if (err.exitCode !== 65) return { kind: "finding", message: `exit ${err.exitCode} (not 65): ${err.message.slice(0, 300)}` };
      if (!namesAField(err)) return { kind: "finding", message: `exit 65 without naming a field: ${err.message.slice(0, 300)}` };
      return { kind: "refused", message: err.message };
    }
    return { kind: "finding", message: `exit 70: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`.slice(0, 400) };
  }
}

// ---------------------------------------------------------------------------------------------------
// binary: dist/vks and real systemd

/** Kubernetes' $(VAR) expansion (k8s.io/kubernetes third_party/forked/golang/expansion), written from its rules. */
function expand(input: string, env: Map<string, string>): string {
  let out = "";
  for (let i = 0; i < input.length; i++) {
    const c = input[i];
    if (c !== "$" || i + 1 >= input.length) {
      out += c;
      continue;
    }
    const next = input[i + 1];
    if (next === "$") {
      out += "$";
      i++;
    } else if (next === "(") {
      const close = input.indexOf(")", i + 2);
      if (close === -1) {
        out += input.slice(i);
        return out;
      }
      const variable = input.slice(i + 2, close);
      out += env.has(variable) ? (env.get(variable) as string) : `$(${variable})`;
      i = close;
    } else {
      out += "$" + next;
      i++;
    }
  }
  return out;
}

function hexToString(hex: string): string {
  return Buffer.from(hex, "hex").toString("utf8");
}

interface BinaryFigures {
  run: number;
  acceptedRan: number;
  refused65: number;
  exit70: string[];
  mismatchedVerdict: string[];
  changedArguments: string[];
  changedEnvironment: string[];
  unitsForRefused: string[];
  leftoverUnits: number;
}

/**
 * Units a pod has: its containers' services and its own slice (the name holds a `_`). Not the QoS slices
 * (vks.slice, vks-burstable.slice, vks-besteffort.slice), which stay, as the kubelet's kubepods.slice does.
 */
async function vksUnitNames(bus: BusConnection): Promise<string[]> {
  const reply = await bus.call({ ...SYSTEMD, member: "ListUnitsByPatterns", signature: "asas", body: [[], ["vks.*.service", "vks*_*.slice"]] }, 120_000);
  return (Array.isArray(reply.body[0]) ? (reply.body[0] as unknown[][]) : []).map((row) => String(row[0]));
}

async function runVks(stateDir: string, args: string[]): Promise<{ code: number; output: string }> {
  const proc = Bun.spawn([VKS, ...args, "--user", "--state-dir", stateDir], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, output: stdout + stderr };
}

function readDump(stateDir: string, podName: string): { args: string[]; env: Map<string, string> } | undefined {
  const logs = join(stateDir, "logs");
  const directory = readdirSync(logs).find((entry) => entry.startsWith(`fuzz_${podName}_`));
  if (directory === undefined) return undefined;
  const lines = readFileSync(join(logs, directory, "c.log"), "utf8").split("\n");
  const start = lines.indexOf("+++");
  const separator = lines.indexOf("---", start);
  if (start === -1 || separator === -1) return undefined;
  const args = lines.slice(start + 1, separator).map(hexToString);
  const env = new Map<string, string>();
  for (const entry of hexToString(lines[separator + 1] ?? "").split("\0")) {
    const eq = entry.indexOf("=");
    if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return { args, env };
}

async function binarySample(g: Gen, refusedTexts: string[], figures: BinaryFigures): Promise<void> {
  const bus = await BusConnection.open({ scope: "user" });
  const stateDir = mkdtempSync(join(tmpdir(), "vks-fuzz-"));
  try {
    const before = new Set(await vksUnitNames(bus));
    // Refused ones: exit 65, no unit.
    const refusedSample = refusedTexts.slice(0, Math.floor(SAMPLE / 3));
    for (const [i, text] of refusedSample.entries()) {
      const file = join(stateDir, `refused-${i}.yaml`);
      writeFileSync(file, text);
      const run = await runVks(stateDir, ["pod", "up", "-d", file]);
      figures.run++;
      if (run.code === 65) figures.refused65++;
      else if (run.code === 70) figures.exit70.push(run.output.slice(0, 300));
      else figures.mismatchedVerdict.push(`refused in-process, binary exit ${run.code}: ${run.output.slice(0, 200)}`);
      const after = (await vksUnitNames(bus)).filter((unit) => !before.has(unit));
      if (after.length > 0) {
        figures.unitsForRefused.push(after.join(", "));
        for (const unit of after) Bun.spawnSync(["systemctl", "--user", "stop", unit]);
      }
    }
    // Runnable ones: what the process saw must be what the manifest says.
    for (let i = 0; i < SAMPLE - refusedSample.length; i++) {
      const generated = generate(g, i, true);
      const verdict = await inProcess(generated.text);
      const file = join(stateDir, `run-${i}.${generated.format}`);
      writeFileSync(file, generated.text);
      const run = await runVks(stateDir, ["pod", "up", "--log-mode", "file", file]);
      figures.run++;
      const podName = `fuzz-${i}`;
      if (run.code === 70) figures.exit70.push(run.output.slice(0, 300));
      if (verdict.kind === "refused") {
        if (run.code === 65) figures.refused65++;
        else figures.mismatchedVerdict.push(`run-${i}: refused in-process (${verdict.message.slice(0, 120)}), binary exit ${run.code}`);
        continue;
      }
      if (run.code !== 0) {
        figures.mismatchedVerdict.push(`run-${i}: accepted in-process, binary exit ${run.code}: ${run.output.slice(-300)}`);
        await runVks(stateDir, ["pod", "down", podName, "-n", "fuzz", "--ignore-not-found"]);
        continue;
      }
      figures.acceptedRan++;
      const dump = readDump(stateDir, podName);
      const spec = generated.runnable!;
      // Text is UTF-8 on its way to the process: a lone surrogate becomes U+FFFD, as kube-apiserver's JSON decoder makes it.
      const wellFormed = (text: string): string => Buffer.from(text, "utf8").toString("utf8");
      const env = new Map<string, string>();
      for (const entry of spec.env) env.set(wellFormed(entry.name), expand(wellFormed(entry.value), env));
      const expectedArgs = spec.args.map((arg) => expand(wellFormed(arg), env));
      if (dump === undefined) figures.changedArguments.push(`run-${i}: no output`);
      else {
        if (JSON.stringify(dump.args) !== JSON.stringify(expectedArgs)) {
          figures.changedArguments.push(`run-${i}: expected ${JSON.stringify(expectedArgs)}, process saw ${JSON.stringify(dump.args)}`);
        }
        for (const [key, value] of env) {
          if (dump.env.get(key) !== value) figures.changedEnvironment.push(`run-${i}: ${JSON.stringify(key)} expected ${JSON.stringify(value)}, process saw ${JSON.stringify(dump.env.get(key))}`);
        }
      }
      await runVks(stateDir, ["pod", "down", podName, "-n", "fuzz"]);
    }
    const left = (await vksUnitNames(bus)).filter((unit) => !before.has(unit));
    figures.leftoverUnits = left.length;
    if (left.length > 0) console.log(`fuzz dist/vks: units left: ${left.join(", ")}`);
    for (const unit of left) Bun.spawnSync(["systemctl", "--user", "stop", unit]);
  } finally {
    bus.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  console.log(`fuzz: seed ${SEED}, ${COUNT} manifests in-process, ${SAMPLE} through dist/vks (rerun with --seed ${SEED})`);
  const g = new Gen(SEED);
  let accepted = 0;
  let refused = 0;
  const findings: string[] = [];
  const refusedTexts: string[] = [];
  const byFormat: Record<string, number> = { yaml: 0, json: 0, raw: 0 };
  let slowest = { ms: 0, mutations: "" };
  const started = performance.now();
  for (let i = 0; i < COUNT; i++) {
    const tg = performance.now();
    const generated = generate(g, i, g.chance(0.15));
    if (process.env.FUZZ_TRACE) console.error(`  gen ${(performance.now() - tg).toFixed(0)} ms`);
    if (process.env.FUZZ_TRACE) console.error(`#${i} ${generated.format} ${generated.mutations.join("+")} ${generated.text.length}`);
    byFormat[generated.format] = (byFormat[generated.format] ?? 0) + 1;
    const t0 = performance.now();
    if (process.env.FUZZ_DUMP === String(i)) writeFileSync("/tmp/w4-fuzz-case.txt", generated.text);
    const verdict = await inProcess(generated.text);
    const elapsed = performance.now() - t0;
    if (process.env.FUZZ_TRACE) console.error(`  ${elapsed.toFixed(0)} ms ${verdict.kind}`);
    if (elapsed > slowest.ms) slowest = { ms: elapsed, mutations: generated.mutations.join("+") || "none" };
    if (verdict.kind === "accepted") accepted++;
    else if (verdict.kind === "refused") {
      refused++;
      // Small ones for the binary sample (the big ones are there too, a few).
      if (generated.text.length < 300_000 || refusedTexts.length % 20 === 0) refusedTexts.push(generated.text);
    } else findings.push(`#${i} [${generated.format}; ${generated.mutations.join("+") || "no mutation"}] ${verdict.message}`);
  }
  const inProcessSeconds = (performance.now() - started) / 1000;
  const lines = [
    `fuzz in-process: ${COUNT} manifests (yaml ${byFormat["yaml"]}, json ${byFormat["json"]}, raw ${byFormat["raw"]}) in ${inProcessSeconds.toFixed(1)} s: accepted ${accepted}, refused 65 naming a field ${refused}, findings (exit 70 / wrong code / no field) ${findings.length}; slowest ${slowest.ms.toFixed(0)} ms (${slowest.mutations})`,
  ];
  for (const finding of findings.slice(0, SHOW)) console.log(`  finding: ${finding}`);
  if (SAMPLE > 0) {
    if (!process.env.DBUS_SESSION_BUS_ADDRESS) throw new Error("no user bus for --sample: run through test/sandbox.sh (or --sample 0)");
    const figures: BinaryFigures = { run: 0, acceptedRan: 0, refused65: 0, exit70: [], mismatchedVerdict: [], changedArguments: [], changedEnvironment: [], unitsForRefused: [], leftoverUnits: 0 };
    const binaryStarted = performance.now();
    await binarySample(new Gen(SEED + 1), refusedTexts, figures);
    const seconds = ((performance.now() - binaryStarted) / 1000).toFixed(0);
    for (const item of [...figures.exit70, ...figures.mismatchedVerdict, ...figures.changedArguments, ...figures.changedEnvironment, ...figures.unitsForRefused].slice(0, SHOW)) console.log(`  binary: ${item}`);
    lines.push(
      `fuzz dist/vks: ${figures.run} manifests in ${seconds} s: ran and compared ${figures.acceptedRan}, refused with 65 ${figures.refused65}; exit 70 ${figures.exit70.length}, verdict differs from in-process ${figures.mismatchedVerdict.length}, arguments changed ${figures.changedArguments.length}, environment values changed ${figures.changedEnvironment.length}, units created for refused ${figures.unitsForRefused.length}, units left ${figures.leftoverUnits}`,
    );
  }
  for (const line of lines) console.log(line);
  if (process.env.BENCH_SUMMARY) appendFileSync(process.env.BENCH_SUMMARY, lines.map((line) => `fuzz.ts  ${line} (seed ${SEED})\n`).join(""));
}

await main();
