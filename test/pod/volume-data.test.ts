/** Volume content on the host (volume-data.ts): the atomic ..data layout, objects, hostPath checks. No systemd. */
import type { V1ConfigMap, V1Pod, V1Secret } from "@kubernetes/client-node";
import { afterEach, describe, expect, test } from "bun:test";
import { lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PodObjectSource } from "../../internal/pod/objects.ts";
import { MAX_OBJECT_BYTES, VolumeSetupError, preparePodVolumes, refreshPodVolumes } from "../../internal/pod/volume-data.ts";

const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function scratch(): string {
  const directory = mkdtempSync(join(tmpdir(), "vks-volumes-"));
  directories.push(directory);
  return directory;
}

function objectSource(configMaps: Record<string, V1ConfigMap>, secrets: Record<string, V1Secret> = {}): PodObjectSource {
  return { configMap: async (_namespace, name) => configMaps[name], secret: async (_namespace, name) => secrets[name] };
}

function podWith(volumes: NonNullable<V1Pod["spec"]>["volumes"], labels: Record<string, string> = {}): V1Pod {
  return {
    metadata: { name: "p", namespace: "default", uid: "u-1", labels },
    spec: { volumes, containers: [{ name: "app", image: "/bin/true", resources: { limits: { cpu: "250m" } } }] },
  };
}

const mode = (path: string) => statSync(path).mode & 0o7777;

describe("configMap volumes", () => {
  test("files are symlinks through ..data, with items' paths and modes; an update swaps ..data", async () => {
    const root = scratch();
    const configMaps: Record<string, V1ConfigMap> = { app: { data: { "app.conf": "v1", other: "x" } } };
    const pod = podWith([{ name: "config", configMap: { name: "app", defaultMode: 0o640, items: [{ key: "app.conf", path: "conf/app.conf" }, { key: "other", path: "other", mode: 0o600 }] } }]);
    await preparePodVolumes(pod, root, { objects: objectSource(configMaps), canMount: false });
    const volume = join(root, "config");
    expect(lstatSync(join(volume, "conf")).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(volume, "conf"))).toBe("..data/conf");
    const first = readlinkSync(join(volume, "..data"));
    expect(first).toMatch(/^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\./);
    expect(readFileSync(join(volume, "conf/app.conf"), "utf8")).toBe("v1");
    expect(mode(join(volume, "conf/app.conf"))).toBe(0o640);
    expect(mode(join(volume, "other"))).toBe(0o600);

    // Unchanged content: nothing is rewritten.
    await refreshPodVolumes(pod, root, { objects: objectSource(configMaps), canMount: false });
    expect(readlinkSync(join(volume, "..data"))).toBe(first);

    configMaps.app = { data: { "app.conf": "v2", other: "x" } };
    await refreshPodVolumes(pod, root, { objects: objectSource(configMaps), canMount: false });
    const second = readlinkSync(join(volume, "..data"));
    expect(second).not.toBe(first);
    expect(readFileSync(join(volume, "conf/app.conf"), "utf8")).toBe("v2");
    // The old timestamped directory is gone; only the new one, ..data and the visible names remain.
    expect(readdirSync(volume).sort()).toEqual([second, "..data", "conf", "other"].sort());
  });

  test("a missing object is the kubelet's FailedMount text with the field; optional makes it empty", async () => {
    const root = scratch();
    const missing = podWith([{ name: "config", configMap: { name: "absent" } }]);
    const error = await preparePodVolumes(missing, root, { objects: objectSource({}), canMount: false }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(VolumeSetupError);
    expect((error as VolumeSetupError).message).toBe('spec.volumes[0].configMap.name: MountVolume.SetUp failed for volume "config" : configmap "absent" not found');
    expect((error as VolumeSetupError).exitCode).toBe(65);

    const optional = podWith([{ name: "config", configMap: { name: "absent", optional: true } }]);
    await preparePodVolumes(optional, root, { objects: objectSource({}), canMount: false });
    expect(readdirSync(join(root, "config"))).toContain("..data");
  });

  test("a key that is no file name (from an unchecked manifest document) is refused, never written", async () => {
    const root = scratch();
    const pod = podWith([{ name: "config", configMap: { name: "app" } }]);
    const error = await preparePodVolumes(pod, root, { objects: objectSource({ app: { data: { "../escape": "x" } } }), canMount: false }).catch((err: unknown) => err);
    expect((error as Error).message).toContain('configmap key "../escape" is not a valid file name');
    expect(readdirSync(root).sort()).toEqual(["config"]);
  });

  test("an item naming a key the object lacks is refused", async () => {
    const pod = podWith([{ name: "config", configMap: { name: "app", items: [{ key: "nope", path: "x" }] } }]);
    const error = await preparePodVolumes(pod, scratch(), { objects: objectSource({ app: { data: { a: "1" } } }), canMount: false }).catch((err: unknown) => err);
    expect((error as Error).message).toContain("configmap references non-existent config key: nope");
  });
});

describe("secret volumes", () => {
  test("values are decoded, with defaultMode; stringData wins", async () => {
    const root = scratch();
    const secrets: Record<string, V1Secret> = { creds: { data: { password: Buffer.from("s3cret").toString("base64") }, stringData: { user: "admin" } } };
    const pod = podWith([{ name: "creds", secret: { secretName: "creds", defaultMode: 0o400 } }]);
    await preparePodVolumes(pod, root, { objects: objectSource({}, secrets), canMount: false });
    expect(readFileSync(join(root, "creds/password"), "utf8")).toBe("s3cret");
    expect(readFileSync(join(root, "creds/user"), "utf8")).toBe("admin");
    expect(mode(join(root, "creds/password"))).toBe(0o400);
  });

  test("a Secret over 1 MiB is refused with the field", async () => {
    const big = Buffer.alloc(MAX_OBJECT_BYTES + 1, 1).toString("base64");
    const pod = podWith([{ name: "creds", secret: { secretName: "big" } }]);
    const error = await preparePodVolumes(pod, scratch(), { objects: objectSource({}, { big: { metadata: { name: "big" }, data: { blob: big } } }), canMount: false }).catch(
      (err: unknown) => err,
    );
    expect((error as Error).message).toContain("spec.volumes[0].secret.secretName");
    expect((error as Error).message).toContain("limited to 1 MiB");
  });
});

describe("downwardAPI volumes", () => {
  test("labels as sorted key=\"value\" lines, names as plain values, resources with their divisor", async () => {
    const root = scratch();
    const pod = podWith(
      [
        {
          name: "info",
          downwardAPI: {
            items: [
              { path: "labels", fieldRef: { fieldPath: "metadata.labels" } },
              { path: "name", fieldRef: { fieldPath: "metadata.name" } },
              { path: "cpu", resourceFieldRef: { containerName: "app", resource: "limits.cpu", divisor: "1m" } },
            ],
          },
        },
      ],
      { tier: "web", app: "demo" },
    );
    await preparePodVolumes(pod, root, { objects: objectSource({}), canMount: false });
    expect(readFileSync(join(root, "info/labels"), "utf8")).toBe('app="demo"\ntier="web"');
    expect(readFileSync(join(root, "info/name"), "utf8")).toBe("p");
    expect(readFileSync(join(root, "info/cpu"), "utf8")).toBe("250");
  });
});

describe("projected volumes", () => {
  test("without a token issuer (pod up) a serviceAccountToken source is refused, naming it", async () => {
    const pod = podWith([{ name: "kube-api-access-x", projected: { sources: [{ serviceAccountToken: { path: "token" } }] } }]);
    const error = await preparePodVolumes(pod, scratch(), { objects: objectSource({}), canMount: false }).catch((err: unknown) => err);
    expect((error as Error).message).toContain("spec.volumes[0].projected.sources[0].serviceAccountToken");
  });

  test("a token is requested bound to the pod and renewed only after 80 % of its lifetime", async () => {
    const root = scratch();
    let issued = 0;
    const objects: PodObjectSource = {
      ...objectSource({}),
      serviceAccountToken: async (request) => {
        issued++;
        expect(request.podUid).toBe("u-1");
        return { token: `token-${issued}`, expiresAt: new Date(Date.now() + 3600_000) };
      },
    };
    const pod = podWith([{ name: "token", projected: { sources: [{ serviceAccountToken: { path: "token", audience: "api" } }] } }]);
    const tokens = new Map();
    await preparePodVolumes(pod, root, { objects, canMount: false, tokens });
    await refreshPodVolumes(pod, root, { objects, canMount: false, tokens });
    expect(issued).toBe(1);
    expect(readFileSync(join(root, "token/token"), "utf8")).toBe("token-1");
  });
});

describe("hostPath volumes", () => {
  test("type checks use the kubelet's messages; the OrCreate types create", async () => {
    const root = scratch();
    const file = join(root, "file");
    await Bun.write(file, "x");
    const check = async (path: string, type: string) =>
      preparePodVolumes(podWith([{ name: "h", hostPath: { path, type } }]), join(root, "volumes"), { objects: objectSource({}), canMount: false }).then(
        () => "ok",
        (err: unknown) => (err as Error).message,
      );
    expect(await check(file, "Directory")).toBe(`spec.volumes[0].hostPath.path: MountVolume.SetUp failed for volume "h" : hostPath type check failed: ${file} is not a directory`);
    expect(await check(root, "File")).toContain(`hostPath type check failed: ${root} is not a file`);
    expect(await check(file, "Socket")).toContain("is not a socket file");
    expect(await check(join(root, "made/dir"), "DirectoryOrCreate")).toBe("ok");
    expect(statSync(join(root, "made/dir")).isDirectory()).toBe(true);
    expect(await check(join(root, "made/file"), "FileOrCreate")).toBe("ok");
    expect(statSync(join(root, "made/file")).isFile()).toBe(true);
    expect(await check(join(root, "absent"), "")).toContain("does not exist");
  });
});
