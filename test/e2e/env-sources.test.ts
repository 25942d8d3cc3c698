// `pod up` with ConfigMap and Secret documents: the container sees every value exactly (tricky bytes
// included), Secret values are in no unit property (systemctl show), in no vks output and not in the pod
// record; the record is 0600 and the secret env file goes with the pod. Real systemd, in the sandbox.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { eventually, haveSystemd, managerFlag, podNamed, vks, writeManifest, testFileStateDir } from "./helpers.ts";

setDefaultTimeout(120_000);
const stateDir = testFileStateDir();
const user = managerFlag;

/** Values that break naive quoting: quotes, backslashes, newlines, `$`, spaces, backticks, `#`, UTF-8. */
const TRICKY = `it's "quoted" \\ back\\slash\n  second line  $HOME $(X) \`id\` #hash ✓`;
const PASSWORD = "hunter2-SECRET-MARK";

function manifest(): string {
  const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");
  return `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  MODE: fast
  bad-name: skipped
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
data:
  TRICKY: ${b64(TRICKY)}
stringData:
  password: ${JSON.stringify(PASSWORD)}
---
apiVersion: v1
kind: Pod
metadata:
  name: envpod
spec:
  restartPolicy: Never
  containers:
    - name: main
      image: /bin/sh
      args: ["-c", "cat /proc/self/environ > \\"$OUT\\"; sleep infinity", "$(DSN)"]
      resources:
        limits:
          memory: 64Mi
      envFrom:
        - configMapRef:
            name: settings
          prefix: CFG_
        - secretRef:
            name: creds
      env:
        - name: OUT
          value: ${JSON.stringify(join(stateDir, "environ.out"))}
        - name: PASSWORD
          valueFrom:
            secretKeyRef:
              name: creds
              key: password
        - name: DSN
          value: "db://u:$(PASSWORD)@h"
        - name: MEMORY_MI
          valueFrom:
            resourceFieldRef:
              resource: limits.memory
              divisor: 1Mi
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
`;
}

describe.skipIf(!haveSystemd)("pod up with ConfigMap and Secret documents (end to end, real systemd)", () => {
  test("the process sees the values exactly; no Secret value in unit properties, output or the record", async () => {
    const file = writeManifest(stateDir, "envpod.yaml", manifest());
    const up = await vks(stateDir, ["pod", "up", "-d", file, ...user]);
    expect(up.exitCode).toBe(0);
    expect(up.stdout + up.stderr).toContain("bad-name");
    expect(up.stdout + up.stderr).not.toContain(PASSWORD);
    const running = await eventually("envpod running", async () => {
      const listed = await podNamed(stateDir, "envpod");
      return listed?.status.phase === "Running" ? listed : undefined;
    });
    const out = join(stateDir, "environ.out");
    const environ = await eventually("environ written", async () => (existsSync(out) && readFileSync(out, "utf8").length > 0 ? readFileSync(out, "utf8") : undefined));
    const variables = new Map(environ.split("\0").filter(Boolean).map((entry) => [entry.slice(0, entry.indexOf("=")), entry.slice(entry.indexOf("=") + 1)] as const));
    expect(variables.get("TRICKY")).toBe(TRICKY);
    expect(variables.get("password")).toBe(PASSWORD);
    expect(variables.get("PASSWORD")).toBe(PASSWORD);
    expect(variables.get("DSN")).toBe(`db://u:${PASSWORD}@h`);
    expect(variables.get("CFG_MODE")).toBe("fast");
    expect(variables.get("MEMORY_MI")).toBe("64");
    expect(variables.get("POD_NAME")).toBe("envpod");
    expect([...variables.keys()].some((name) => name.startsWith("VKS_EXEC_"))).toBe(false);
    // The argv word made from the Secret reached the process too ($0 of sh -c).
    const unit = `vks.default.envpod.main.${running.metadata.uid}.service`;
    const mainPID = (await Bun.$`systemctl ${user} show -p MainPID --value ${unit}`.text()).trim();
    const cmdline = readFileSync(`/proc/${mainPID}/cmdline`, "utf8").split("\0");
    expect(cmdline).toContain(`db://u:${PASSWORD}@h`);

    // What any local user can read over D-Bus: no Secret value anywhere in the unit's properties.
    const shown = await Bun.$`systemctl ${user} show ${unit}`.text();
    expect(shown).toContain("CFG_MODE=fast");
    expect(shown).not.toContain(PASSWORD);
    expect(shown).not.toContain("second line");
    const environment = await Bun.$`systemctl ${user} show -p Environment ${unit}`.text();
    expect(environment).not.toContain(PASSWORD);
    expect(shown).toMatch(/EnvironmentFiles=.*secret-env/);

    // The env file: 0600 in a 0700 directory per pod UID; the record: 0600 and references only.
    const envDir = join(stateDir, "secret-env", running.metadata.uid);
    expect(statSync(envDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(envDir, "main.env")).mode & 0o777).toBe(0o600);
    const recordPath = join(stateDir, "pods", "default", "envpod.json");
    expect(statSync(recordPath).mode & 0o777).toBe(0o600);
    const record = readFileSync(recordPath, "utf8");
    expect(record).not.toContain(PASSWORD);
    expect(record).not.toContain(Buffer.from(TRICKY).toString("base64"));
    expect(record).toContain("secretKeyRef");

    const described = await vks(stateDir, ["pod", "ls", "-o", "json", ...user]);
    expect(described.stdout).not.toContain(PASSWORD);

    const down = await vks(stateDir, ["pod", "down", "envpod", ...user]);
    expect(down.exitCode).toBe(0);
    expect(existsSync(envDir)).toBe(false);
  });

  test("a missing Secret is refused naming the field, exit 65, nothing created", async () => {
    const file = writeManifest(
      stateDir,
      "missing.yaml",
      `apiVersion: v1\nkind: Pod\nmetadata:\n  name: first\nspec:\n  containers:\n    - name: main\n      image: /bin/sleep\n      args: ["infinity"]\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: lacks\nspec:\n  containers:\n    - name: main\n      image: /bin/sleep\n      args: ["infinity"]\n      env:\n        - name: T\n          valueFrom:\n            secretKeyRef:\n              name: nowhere\n              key: t\n`,
    );
    const up = await vks(stateDir, ["pod", "up", "-d", file, ...user]);
    expect(up.exitCode).toBe(65);
    expect(up.stderr).toContain('spec.containers[0].env[0].valueFrom.secretKeyRef: secret "nowhere" not found in namespace default');
    expect(await podNamed(stateDir, "first")).toBeUndefined();
    const records = join(stateDir, "pods", "default");
    expect(existsSync(records) ? readdirSync(records).filter((name) => name.endsWith(".json")) : []).toEqual([]);
  });
});
