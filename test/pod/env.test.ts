// Env resolution as the kubelet does it (env.ts, env-sources.ts, resource-field.ts), the secret env file's
// format (env-file.ts) and ConfigMap/Secret documents (manifest-objects.ts). Pure.
import { describe, expect, test } from "bun:test";
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { ExitCode, ValidationError, VksError } from "../../internal/errors.ts";
import { parseEnvironmentFile } from "../../internal/image/environment.ts";
import { containerEnv, skippedEnvKeys, type EnvResolution } from "../../internal/pod/env.ts";
import { formatEnvironmentFile } from "../../internal/pod/env-file.ts";
import { EnvSourceError, checkEnvReferences, envObjectNames, fetchEnvObjects, type EnvObjects } from "../../internal/pod/env-sources.ts";
import { launchCommands } from "../../internal/pod/launcher.ts";
import { parseManifestContents } from "../../internal/pod/manifest.ts";
import { manifestObjectSource } from "../../internal/pod/manifest-objects.ts";
import { divisorProblem, resourceFieldValue } from "../../internal/pod/resource-field.ts";
import { validatePod } from "../../internal/pod/validate.ts";

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

const OBJECTS: EnvObjects = {
  configMaps: { cm: { data: { A: "1", B: "2", "bad-key": "x", REF: "$(A)" } }, other: { data: { A: "other" } } },
  secrets: { s: { data: { TOKEN: b64("t0k"), user: b64("admin") } } },
};

function podWith(container: Partial<V1Container>, extra: Partial<V1Pod["spec"]> = {}): V1Pod {
  return {
    metadata: { name: "p", namespace: "ns", uid: "u-1", labels: { app: "web" }, annotations: { note: "n" } },
    spec: { nodeName: "node-1", containers: [{ name: "c", image: "/bin/true", ...container }], ...extra },
  };
}

function env(pod: V1Pod, resolution: Partial<EnvResolution> = {}) {
  const container = pod.spec?.containers[0] as V1Container;
  return containerEnv(pod, container, "spec.containers[0]", { mode: "strict", host: { hostIP: "10.1.2.3" }, objects: OBJECTS, ...resolution });
}

describe("env sources", () => {
  test("envFrom first (later sources win, prefix applied, invalid keys skipped), then env in order", () => {
    const skipped: unknown[] = [];
    const pod = podWith({
      envFrom: [{ configMapRef: { name: "cm" } }, { configMapRef: { name: "other" } }, { secretRef: { name: "s" }, prefix: "S_" }],
      env: [
        { name: "B", valueFrom: { configMapKeyRef: { name: "other", key: "A" } } },
        { name: "X", value: "$(A)-$(S_TOKEN)" },
        { name: "Y", value: "$(A)" },
      ],
    });
    expect(env(pod, { onSkippedKeys: (entry) => skipped.push(entry) })).toEqual([
      { name: "A", value: "other" },
      { name: "B", value: "other" },
      { name: "REF", value: "$(A)" },
      { name: "S_TOKEN", value: "t0k", secret: true },
      { name: "S_user", value: "admin", secret: true },
      { name: "X", value: "other-t0k", secret: true },
      { name: "Y", value: "other" },
    ]);
    expect(skipped).toEqual([{ container: "c", source: "configmap ns/cm", keys: ["bad-key"] }]);
    expect(skippedEnvKeys(pod, OBJECTS)).toEqual([{ container: "c", source: "configmap ns/cm", keys: ["bad-key"] }]);
  });

  test("a literal value replacing a secret one is no longer secret; $$ stays an escape", () => {
    const pod = podWith({
      envFrom: [{ secretRef: { name: "s" } }],
      env: [{ name: "TOKEN", value: "public $$(TOKEN)" }],
    });
    expect(env(pod)).toEqual([
      { name: "TOKEN", value: "public $(TOKEN)" },
      { name: "user", value: "admin", secret: true },
    ]);
  });

  test("optional misses are skipped; required misses name the field, as EnvSourceError (exit 65)", () => {
    const optional = podWith({
      envFrom: [{ secretRef: { name: "nope", optional: true } }],
      env: [
        { name: "Y", valueFrom: { configMapKeyRef: { name: "cm", key: "missing", optional: true } } },
        { name: "Z", valueFrom: { secretKeyRef: { name: "gone", key: "k", optional: true } } },
      ],
    });
    expect(env(optional)).toEqual([]);
    const missingObject = () => env(podWith({ env: [{ name: "Y", valueFrom: { secretKeyRef: { name: "nope", key: "k" } } }] }));
    expect(missingObject).toThrow('spec.containers[0].env[0].valueFrom.secretKeyRef: secret "nope" not found in namespace ns');
    const missingKey = () => env(podWith({ env: [{ name: "Y", valueFrom: { configMapKeyRef: { name: "cm", key: "zz" } } }] }));
    expect(missingKey).toThrow("couldn't find key zz in ConfigMap ns/cm");
    const missingFrom = () => env(podWith({ envFrom: [{ configMapRef: { name: "nope" } }] }));
    expect(missingFrom).toThrow('spec.containers[0].envFrom[0].configMapRef: configmap "nope" not found');
    try {
      missingKey();
    } catch (err) {
      expect(err).toBeInstanceOf(EnvSourceError);
      expect((err as EnvSourceError).exitCode).toBe(ExitCode.invalidInput);
      expect((err as EnvSourceError).container).toBe("c");
      expect((err as EnvSourceError).reason).toBe("CreateContainerConfigError");
    }
    // Lenient (argv[0] prediction before objects exist) leaves them undefined instead.
    expect(env(podWith({ env: [{ name: "Y", valueFrom: { secretKeyRef: { name: "nope", key: "k" } } }] }), { mode: "lenient" })).toEqual([]);
  });

  test("every fieldRef the kubelet supports", () => {
    const fields = ["metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels['app']", "metadata.annotations['note']", "metadata.labels['none']",
      "spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"];
    const pod = podWith({ env: fields.map((fieldPath, index) => ({ name: `F${index}`, valueFrom: { fieldRef: { fieldPath } } })) });
    expect(env(pod).map((entry) => entry.value)).toEqual(["p", "ns", "u-1", "web", "n", "", "node-1", "default", "10.1.2.3", "10.1.2.3", "10.1.2.3", "10.1.2.3"]);
  });

  test("non-UTF-8 or NUL Secret values are refused with the field: systemd cannot pass them", () => {
    const objects: EnvObjects = { configMaps: { cm: { data: { NUL: "a\0b" } } }, secrets: { bin: { data: { k: Buffer.from([0xff, 0xfe]).toString("base64") } } } };
    expect(() => env(podWith({ env: [{ name: "K", valueFrom: { secretKeyRef: { name: "bin", key: "k" } } }] }), { objects })).toThrow("is not valid UTF-8");
    expect(() => env(podWith({ envFrom: [{ configMapRef: { name: "cm" } }] }), { objects })).toThrow("contains a NUL character");
  });

  test("fetchEnvObjects asks the source for each referenced object once; checkEnvReferences finds what is missing", async () => {
    const pod = podWith({
      envFrom: [{ configMapRef: { name: "cm" } }, { secretRef: { name: "s" } }],
      env: [{ name: "A", valueFrom: { configMapKeyRef: { name: "cm", key: "A" } } }, { name: "M", valueFrom: { secretKeyRef: { name: "absent", key: "k" } } }],
    });
    expect(envObjectNames(pod)).toEqual({ configMaps: ["cm"], secrets: ["s", "absent"] });
    const asked: string[] = [];
    const objects = await fetchEnvObjects(pod, {
      configMap: async (namespace, name) => (asked.push(`cm ${namespace}/${name}`), OBJECTS.configMaps[name]),
      secret: async (namespace, name) => (asked.push(`secret ${namespace}/${name}`), OBJECTS.secrets[name]),
    });
    expect(asked.sort()).toEqual(["cm ns/cm", "secret ns/absent", "secret ns/s"]);
    expect(Object.keys(objects.secrets)).toEqual(["s"]);
    expect(() => checkEnvReferences(pod, objects)).toThrow('pod ns/p: spec.containers[0].env[1].valueFrom.secretKeyRef: secret "absent" not found in namespace ns');
  });
});

describe("resourceFieldRef", () => {
  const container: V1Container = { name: "c", resources: { limits: { cpu: "1500m", memory: "100M" }, requests: { cpu: "10m" } } };
  const allocatable = { cpu: "8", memory: "2Gi", "ephemeral-storage": "10Gi" };
  const cases: [resource: Parameters<typeof resourceFieldValue>[1], divisor: string | undefined, expected: string][] = [
    ["limits.cpu", undefined, "2"],
    ["limits.cpu", "1m", "1500"],
    ["requests.cpu", undefined, "1"],
    ["requests.cpu", "1m", "10"],
    ["limits.memory", undefined, "100000000"],
    ["limits.memory", "1Mi", "96"],
    ["limits.memory", "1M", "100"],
    ["requests.memory", undefined, "100000000"],
    ["limits.ephemeral-storage", "1Gi", "10"],
    ["requests.ephemeral-storage", undefined, "0"],
  ];
  for (const [resource, divisor, expected] of cases) {
    test(`${resource} / ${divisor ?? "1"} = ${expected}`, () => {
      expect(resourceFieldValue(container, resource, divisor, allocatable)).toBe(expected);
    });
  }

  test("no limit and no allocatable is an error; divisors the API server refuses are named", () => {
    expect(() => resourceFieldValue({ name: "c" }, "limits.memory", undefined, undefined)).toThrow("allocatable memory is not known");
    expect(divisorProblem("limits.cpu", "1000m")).toBeUndefined();
    expect(divisorProblem("limits.cpu", "2")).toContain("only divisor's values 1m, 1 are supported with the cpu resource");
    expect(divisorProblem("limits.memory", "1Ki")).toBeUndefined();
    expect(divisorProblem("requests.ephemeral-storage", "3")).toContain("local ephemeral storage");
  });
});

describe("secret env file", () => {
  const tricky = ['quote " and \' single', "back\\slash \\n not a newline", "two\nlines\n", "$HOME ${X} $$ `cmd`", "  spaces  ", "tab\tand\rcr", "ünïcødé ✓", "#not a comment", "", "trailing backslash\\"];

  test("every tricky value comes back exactly through systemd's EnvironmentFile= syntax", () => {
    const assignments = tricky.map((value, index) => `V${index}=${value}`);
    const text = formatEnvironmentFile(assignments);
    const parsed = parseEnvironmentFile(text);
    expect(parsed.problems).toEqual([]);
    expect(parsed.entries).toEqual(assignments);
  });

  test("the launcher puts argv words and restored shell variables made from a Secret in the secret list", () => {
    const launched = launchCommands(
      {
        execStartPre: [],
        execStart: [{ path: "/bin/echo", argv: ["echo", "public", "s3cret"], ignoreFailure: false }],
        environment: ["A=1"],
        secretEnvironment: ["IFS=s3cret", "TOKEN=s3cret"],
        secretStartWords: new Set([2]),
      },
      () => "env",
    );
    expect(launched.environment.join("\n")).not.toContain("s3cret");
    expect(launched.environment).toContain("VKS_EXEC_START0_1=public");
    expect(launched.secretEnvironment).toEqual(["IFS=s3cret", "TOKEN=s3cret", "VKS_EXEC_START0_2=s3cret", "VKS_EXEC_ENV_IFS=s3cret"]);
  });
});

describe("ConfigMap and Secret documents", () => {
  const file = `apiVersion: v1
kind: ConfigMap
metadata: { name: cm }
data: { A: "1" }
binaryData: { BIN: aGk= }
---
apiVersion: v1
kind: Secret
metadata: { name: s, namespace: other }
data: { k: b2xk, kept: eA== }
stringData: { k: "new value" }
---
apiVersion: v1
kind: Pod
metadata: { name: p }
spec: { containers: [{ name: c, image: /bin/true }] }
`;

  test("are read next to pods; stringData is merged into data as the API server does", async () => {
    const contents = parseManifestContents(file, "f.yaml");
    expect(contents.pods.map((pod) => pod.metadata?.name)).toEqual(["p"]);
    expect(contents.configMaps[0]?.data).toEqual({ A: "1" });
    expect(contents.secrets[0]?.data).toEqual({ k: b64("new value"), kept: "eA==" });
    expect(contents.secrets[0]?.stringData).toBeUndefined();
    const source = manifestObjectSource(contents.configMaps, contents.secrets, "f.yaml");
    expect((await source.configMap("default", "cm"))?.data).toEqual({ A: "1" });
    expect(await source.secret("default", "s")).toBeUndefined();
    expect((await source.secret("other", "s"))?.data?.["k"]).toBe(b64("new value"));
  });

  test("bad documents are refused with the field; duplicates and oversized data too", () => {
    const bad = "apiVersion: v1\nkind: Secret\nmetadata: { name: s }\ndata: { 'a/b': '!!notbase64' }\n";
    expect(() => parseManifestContents(bad, "b.yaml")).toThrow(ValidationError);
    expect(() => parseManifestContents(bad, "b.yaml")).toThrow("must be base64");
    const big = `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: big }\ndata: { k: "${"x".repeat(1024 * 1024 + 1)}" }\n`;
    expect(() => parseManifestContents(big, "big.yaml")).toThrow("the limit is 1048576 (1 MiB)");
    const twice = parseManifestContents(`${file}---\napiVersion: v1\nkind: ConfigMap\nmetadata: { name: cm }\n`, "d.yaml");
    expect(() => manifestObjectSource(twice.configMaps, twice.secrets, "d.yaml")).toThrow(VksError);
  });
});

describe("validation of env sources", () => {
  test("envFrom and every valueFrom source are accepted; mistakes are refused with their paths", () => {
    const good = podWith({
      envFrom: [{ configMapRef: { name: "cm" }, prefix: "P_" }, { secretRef: { name: "s", optional: true } }],
      env: [
        { name: "A", valueFrom: { configMapKeyRef: { name: "cm", key: "a.b" } } },
        { name: "B", valueFrom: { secretKeyRef: { name: "s", key: "k" } } },
        { name: "C", valueFrom: { resourceFieldRef: { resource: "limits.memory", divisor: "1Mi" } } },
      ],
    });
    expect(() => validatePod(good, "good")).not.toThrow();
    const bad = podWith({
      envFrom: [{ configMapRef: { name: "cm" }, secretRef: { name: "s" } }, { configMapRef: { name: "" } }, { secretRef: { name: "s" }, prefix: "1-" }],
      env: [
        { name: "A", valueFrom: { configMapKeyRef: { name: "cm", key: "a/b" } } },
        { name: "B", valueFrom: { resourceFieldRef: { resource: "limits.cpu", divisor: "2" } } },
        { name: "C", valueFrom: { resourceFieldRef: { resource: "limits.hugepages-2Mi" } } },
        { name: "D", valueFrom: { resourceFieldRef: { resource: "limits.cpu", containerName: "nope" } } },
      ],
    });
    let problems: string[] = [];
    try {
      validatePod(bad, "bad");
    } catch (err) {
      problems = (err as ValidationError).problems.map((problem) => problem.path);
    }
    expect(problems).toEqual([
      "spec.containers[0].envFrom[0]",
      "spec.containers[0].envFrom[1].configMapRef.name",
      "spec.containers[0].envFrom[2].prefix",
      "spec.containers[0].env[0].valueFrom.configMapKeyRef.key",
      "spec.containers[0].env[1].valueFrom.resourceFieldRef.divisor",
      "spec.containers[0].env[2].valueFrom.resourceFieldRef.resource",
      "spec.containers[0].env[3].valueFrom.resourceFieldRef.containerName",
    ]);
  });
});
