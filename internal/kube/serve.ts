/**
 * `vks serve`: this host as a Kubernetes node. Wires the pieces together in the order a restart needs:
 * reach the API server, register the node and start the lease, list this node's pods, let the engine
 * adopt what already runs (nothing is restarted), then follow the watch. Pods keep running whatever
 * happens to the API server or to vks itself; vks catches up when it can.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { consola } from "consola";
import { resolve } from "node:path";
import { version } from "../../package.json";
import type { ManagerScope } from "../systemd/types.ts";
import { ExitCode, VksError, errorMessage } from "../errors.ts";
import type { LogModeSetting } from "../logs/logs.ts";
import type { PodObjectSource } from "../pod/objects.ts";
import type { PodProvider } from "../pod/provider.ts";
import { isAccessDenied } from "./api-error.ts";
import { Backoff, sleep } from "./backoff.ts";
import { KubeClient } from "./client.ts";
import { apiObjectSource } from "./env-sources.ts";
import { EventRecorder } from "./events.ts";
import { detectHostIP } from "../host/address.ts";
import { readHostFacts } from "./host.ts";
import { loadKubeConfig } from "./kubeconfig.ts";
import { NodeLease } from "./lease.ts";
import { NodeController, type NodeRuntime } from "./node-controller.ts";
import { NodePodCache, checkNodeName, defaultNodeName, podKeyOf } from "./node-pods.ts";
import type { NodeSettings } from "./node-status.ts";
import { PodController } from "./pod-controller.ts";
import { PodStatusWriter } from "./pod-status-writer.ts";
import { IdleTrim, trimBunHeap } from "./memory-trim.ts";
import type { KubeletRuntime } from "../kubelet/runtime.ts";
import { startKubeletApi, type KubeletApi, type KubeletApiSettings } from "./kubelet-api.ts";
import { parseNodeLabels } from "./node-labels.ts";
import { ServiceNotifier } from "./service-notify.ts";
import { StaticPods, isMirrorPod, isStaticPod } from "./static-pods.ts";
import { limitsCondition } from "./node-status.ts";

/** The Kubernetes version vks speaks; nodeInfo.kubeletVersion is this with vks' own version appended. */
export const KUBERNETES_VERSION = "v1.31.0";
export const KUBELET_VERSION = `${KUBERNETES_VERSION}-vks-${version}`;

/** What serve needs from the pod engine beyond the PodProvider seam. */
export interface ServeProvider extends PodProvider, NodeRuntime, KubeletRuntime {
  /** Adopts running units of `desired`, creates missing ones, removes everything else vks runs. */
  reconcile(desired: V1Pod[]): Promise<void>;
  close(): Promise<void>;
  /** Where pod records and logs live (the node's ephemeral storage). */
  readonly stateDir: string;
  /** The cgroup controllers the manager can enforce limits with (absent in test fakes: not reported). */
  enforceableControllers?(): Promise<ReadonlySet<string>>;
}

export interface ServeOptions {
  kubeconfig?: string;
  nodeName?: string;
  nodeIP?: string;
  externalIP?: string;
  /** --node-labels as given; checked before any API call. */
  nodeLabels?: string;
  kubelet: KubeletApiSettings;
  maxPods: number;
  /** --system-reserved and --kube-reserved: taken off the node's allocatable. */
  reserved?: Record<string, string>[];
  /** --pod-max-pids: TasksMax of each pod's slice (0: none). */
  podMaxPids?: number;
  taint: boolean;
  scope: ManagerScope;
  stateDir?: string;
  logMode?: LogModeSetting;
  aptSources?: Record<string, string>;
  leaseDurationSeconds: number;
  statusUpdateSeconds: number;
  /** How long to wait for the API server at start before giving up. */
  startupTimeoutSeconds: number;
  /** --pod-manifest-path: static pod manifests (the kubelet's staticPodPath). */
  podManifestPath?: string;
  /** Opens the pod engine, reading pods' ConfigMaps and Secrets from `objects`; tests substitute a fake. */
  openProvider?: (hostIP: string, objects: PodObjectSource) => Promise<ServeProvider>;
}

/** Status is written when it changes, and at least this often so readings stay current. */
const NODE_STATUS_REPORT_MS = 60_000;
const POD_SYNC_CONCURRENCY = 16;
const SHUTDOWN_DRAIN_MS = 10_000;
/** After a burst of pod work, memory goes back once it has been quiet this long (memory-trim.ts). */
const TRIM = { quietMs: 250, minIntervalMs: 5_000, minActivities: 10 };

/**
 * Logs the first failure of a channel (the lease, the watch, …) and its recovery, not every retry in
 * between: an outage is two lines, not one per back-off step.
 */
class TroubleLog {
  private readonly failing = new Set<string>();

  failed(channel: string, err: unknown, consequence: string): void {
    if (this.failing.has(channel)) return;
    this.failing.add(channel);
    const message = errorMessage(err);
    consola.warn(`${channel}: ${message}; ${consequence}`);
    const hint = err instanceof VksError ? err.hint : undefined;
    if (hint && isAccessDenied(err)) consola.info(`hint: ${hint}`);
  }

  recovered(channel: string, message: string): void {
    if (this.failing.delete(channel)) consola.info(`${channel}: ${message}`);
  }
}

async function openPodEngine(options: ServeOptions, hostIP: string, objects: PodObjectSource): Promise<ServeProvider> {
  const { PodEngine } = await import("../pod/engine.ts");
  // The node stays up through any systemd outage (NotReady meanwhile) and catches up once reconnected.
  return PodEngine.open({
    scope: options.scope,
    stateDir: options.stateDir,
    hostIP,
    logMode: options.logMode,
    aptSources: options.aptSources,
    objects,
    origin: "serve",
    runProbes: "all",
    reserved: options.reserved ?? [],
    ...(options.podMaxPids ? { podMaxPids: options.podMaxPids } : {}),
    keepReconnecting: true,
  });
}

/**
 * Waits until the API server answers a request vks needs anyway (reading its node). Credentials and
 * permission problems fail at once; an unreachable server is retried until `timeoutSeconds`.
 */
async function waitForApiServer(client: KubeClient, nodeName: string, timeoutSeconds: number, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  const backoff = new Backoff({ initialMs: 500, maxMs: 5000 });
  for (;;) {
    try {
      await client.getNode(nodeName);
      return;
    } catch (err) {
      if (isAccessDenied(err) || signal.aborted || Date.now() >= deadline) throw err;
      if (backoff.failures === 0) consola.warn(`${errorMessage(err)}; retrying for up to ${timeoutSeconds}s`);
      await sleep(Math.min(backoff.next(), Math.max(0, deadline - Date.now())), signal);
    }
  }
}

export async function serve(options: ServeOptions, signal: AbortSignal): Promise<void> {
  // A label NodeRestriction would refuse is a usage error now, not a registration failing forever.
  const extraLabels = parseNodeLabels(options.nodeLabels);
  const kube = loadKubeConfig(options.kubeconfig);
  const nodeName = checkNodeName(options.nodeName ?? defaultNodeName());
  const client = new KubeClient(kube.config, kube.server);
  consola.info(`vks ${version}: node ${nodeName}, API server ${kube.server} (kubeconfig: ${kube.source})`);
  const service = new ServiceNotifier();
  service.status(`waiting for the API server ${kube.server}`);
  await waitForApiServer(client, nodeName, options.startupTimeoutSeconds, signal);
  if (signal.aborted) return;

  const facts = readHostFacts();
  const nodeIP = options.nodeIP ?? detectHostIP();
  if (nodeIP === undefined) {
    throw new VksError("cannot tell this host's IP address (no non-loopback IPv4 address)", {
      exitCode: ExitCode.usage,
      hint: "pass --node-ip with the address other nodes reach this host on",
    });
  }
  // Pods' ConfigMaps and Secrets come from the API server, read by name when a pod needs them.
  const objects = apiObjectSource(client);
  const provider = await (options.openProvider ?? ((ip, source) => openPodEngine(options, ip, source)))(nodeIP, objects);
  const trouble = new TroubleLog();
  let kubeletApi: KubeletApi | undefined;
  try {
    // Listening first: the node advertises the port actually bound (daemonEndpoints.kubeletEndpoint.Port).
    kubeletApi = await startKubeletApi(
      {
        client,
        kubeConfig: kube.config,
        nodeName,
        addresses: { internalIP: nodeIP, externalIP: options.externalIP, hostname: facts.hostname },
        runtime: provider,
        stateDir: provider.stateDir,
        settings: options.kubelet,
        onError: (message) => consola.warn(message),
      },
      signal,
    );
    consola.info(`kubelet API on ${options.kubelet.address}:${kubeletApi.port}`);
    const controllers = await provider.enforceableControllers?.().catch(() => undefined);
    const limits = controllers === undefined ? undefined : limitsCondition(options.scope, controllers);
    if (limits?.status === "False") consola.warn(`${limits.message}`);
    const settings: NodeSettings = {
      ...(limits === undefined ? {} : { limitsCondition: limits }),
      name: nodeName,
      internalIP: nodeIP,
      externalIP: options.externalIP,
      port: kubeletApi.port,
      extraLabels,
      maxPods: options.maxPods,
      reserved: options.reserved ?? [],
      taint: options.taint,
      kubeletVersion: KUBELET_VERSION,
    };
    const node = new NodeController(
      client,
      provider,
      settings,
      facts,
      { statusIntervalMs: options.statusUpdateSeconds * 1000, reportIntervalMs: NODE_STATUS_REPORT_MS, stateDir: provider.stateDir },
      {
        onRegistered: (_node, created) => consola.success(`node ${nodeName} ${created ? "registered" : "updated"}`),
        onStatusWritten: (written, changed) => {
          trouble.recovered("node status", "written again");
          if (!changed) return;
          const ready = written.status?.conditions?.find((condition) => condition.type === "Ready");
          consola.debug(`node status written: Ready ${ready?.status ?? "unknown"}${ready?.reason ? ` (${ready.reason})` : ""}`);
        },
        onChecked: () => service.tick("node status"),
        onError: (err) => {
          service.tick("node status");
          trouble.failed("node status", err, "retrying");
        },
      },
    );
    await node.register();
    // Ready for systemd once the node exists: a unit ordered after vks sees the node in the API server.
    service.ready(`node ${nodeName} registered; adopting the pods already on this host`);

    const lease = new NodeLease(client, nodeName, options.leaseDurationSeconds, () => node.reference(), {
      onRenewed: () => {
        service.tick("node lease");
        trouble.recovered("node lease", "renewed again");
      },
      onError: (err) => {
        service.tick("node lease");
        trouble.failed("node lease", err, "retrying (the node turns NotReady if this lasts)");
      },
    });
    service.watch({ name: "node lease", intervalMs: lease.renewIntervalMs });
    // The node's status follows systemd from registration on, as the lease does: adopting the pods below
    // may take a while (package installs, or systemd away: a bus lost in that moment left the node Ready
    // for as long as systemd was gone, since the status loop had not started).
    service.watch({ name: "node status", intervalMs: options.statusUpdateSeconds * 1000 });
    service.startWatchdog();
    const running: Promise<void>[] = [lease.run(signal), node.run(signal)];

    // Assigned below; the cache's handlers only fire once the controller exists.
    let controller: PodController | undefined;
    let statusWriter: PodStatusWriter | undefined;
    let statics: StaticPods | undefined;
    // A static pod's status goes to its mirror pod, once the mirror exists.
    const pushStatus = (pod: V1Pod) => {
      const target = isStaticPod(pod) ? statics?.translate(pod) : pod;
      if (target !== undefined) statusWriter?.push(target);
    };
    const resync = async (pods: V1Pod[]) => {
      const keys = new Set(pods.map(podKeyOf));
      for (const pod of await provider.listPods()) {
        keys.add(podKeyOf(pod));
        pushStatus(pod);
      }
      for (const key of keys) controller?.enqueue(key);
      statusWriter?.retryNow();
    };
    const cache = new NodePodCache(client, nodeName, {
      onUpsert: (pod) => {
        controller?.enqueue(podKeyOf(pod));
        statics?.apiPodChanged(pod);
      },
      onDelete: (pod) => {
        controller?.enqueue(podKeyOf(pod));
        statics?.apiPodChanged(pod, true);
      },
      onResync: (pods) => {
        resync(pods).catch((err) => trouble.failed("resync", err, "pods are synced as their events arrive"));
      },
      onConnectivity: (connected, err) => {
        if (connected) trouble.recovered("pod watch", "API server reachable again; resyncing pods");
        else trouble.failed("pod watch", err, "running pods keep running; retrying with back-off");
      },
    });
    const trim = new IdleTrim({ ...TRIM, trim: trimBunHeap });
    statusWriter = new PodStatusWriter(client, cache, {
      onWritten: (pod, queuedAt) => {
        trim.activity();
        trouble.recovered("pod status", "written again");
        const reportedAt = performance.timeOrigin + queuedAt;
        consola.debug(
          `status of ${podKeyOf(pod)} (${pod.status?.phase ?? "?"}) written ${(performance.now() - queuedAt).toFixed(1)}ms after the engine reported it (at ${reportedAt.toFixed(1)})`,
        );
      },
      onError: (pod, err) => trouble.failed("pod status", err, `will retry writing ${podKeyOf(pod)}`),
      onIdle: () => events.resume(),
    });
    const writesStatus = statusWriter;
    const events = new EventRecorder(client, nodeName, {
      onError: (err) => trouble.failed("events", err, "events are best effort"),
      onDropped: (count) => consola.warn(`events: ${count} dropped while the API server was unreachable`),
      statusWritesBusy: () => writesStatus.busy,
    });
    controller = new PodController(
      client,
      provider,
      cache,
      statusWriter,
      events,
      { concurrency: POD_SYNC_CONCURRENCY, hostIP: nodeIP },
      {
        onCreated: (pod) => {
          trim.activity();
          consola.info(`pod ${podKeyOf(pod)} created`);
        },
        onDeleted: (pod) => {
          trim.activity();
          consola.info(`pod ${podKeyOf(pod)} removed`);
        },
        onSyncError: (key, err, retryInMs) => consola.warn(`pod ${key}: ${errorMessage(err)} (retrying in ${(retryInMs / 1000).toFixed(1)}s)`),
      },
    );
    const writer = statusWriter;
    const pods = controller;
    provider.notifyPods((pod) => {
      pods.observeProviderStatus(pod);
      pushStatus(pod);
    });
    provider.notifyEvents((pod, event) => events.record(pod, event));

    statics = new StaticPods({
      client,
      provider,
      nodeName,
      node: () => node.reference(),
      pods: cache,
      pushStatus: (pod) => writer.push(pod),
      // Absolute: the file's path is part of each static pod's UID, as with the kubelet.
      directory: options.podManifestPath === undefined ? undefined : resolve(options.podManifestPath),
      hooks: {
        onInvalidFile: (file, message) => consola.warn(`static pod manifest ${message.startsWith(file) ? message : `${file}: ${message}`}; the other manifests still run`),
        onCreated: (pod) => consola.info(`static pod ${podKeyOf(pod)} created`),
        onDeleted: (pod) => consola.info(`static pod ${podKeyOf(pod)} removed`),
        onMirrorCreated: (pod) => consola.debug(`mirror pod ${podKeyOf(pod)} created`),
        onError: (what, err) => trouble.failed(what, err, "retrying at the next change or rescan"),
      },
    });
    const staticPods = await statics.load();
    const assigned = await cache.relist();
    try {
      // Static pods are desired too: adopted (or started again after a reboot) with the API server's pods.
      await provider.reconcile([...assigned.filter((pod) => !isMirrorPod(pod)), ...staticPods]);
    } catch (err) {
      // The controller syncs every pod next anyway, with retries; a pod that failed here is not lost.
      consola.warn(`reconciling the pods already on this host: ${errorMessage(err)}`);
    }
    controller.start();
    statics.start(signal);
    await resync(assigned);
    consola.success(`serving node ${nodeName}: ${assigned.length} pod(s) assigned`);
    service.status(`serving node ${nodeName}: ${assigned.length} pod(s) assigned at start`);
    signal.addEventListener("abort", () => service.stopping("stopping; pods keep running"), { once: true });

    running.push(cache.run(signal));
    await Promise.all(running);

    controller.stop();
    await Promise.race([controller.idle(), sleep(SHUTDOWN_DRAIN_MS)]);
    statusWriter.stop();
    events.stop();
    trim.stop();
    consola.info("stopped; pods keep running and are adopted when vks starts again");
  } finally {
    service.stopWatchdog();
    await kubeletApi?.stop();
    await provider.close();
  }
}
