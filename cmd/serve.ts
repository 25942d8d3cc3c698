import { defineCommand } from "citty";
import { managerArgs, scopeFromArgs } from "../internal/cli/flags.ts";
import { parseAptSources, parsePort, parsePositiveInt, parseReservation } from "../internal/cli/parse.ts";
import { parseLogModeSetting } from "../internal/logs/logs.ts";

/** serve's flags; `vks service install -- FLAGS` checks its pass-through flags against these. */
export const serveArgs = {
  kubeconfig: { type: "string", description: "Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster service account)" },
  nodename: { type: "string", description: "Node name (default: this host's name)" },
  "node-ip": { type: "string", description: "The node's InternalIP (default: the address of the default route's interface)" },
  "node-external-ip": { type: "string", description: "The node's ExternalIP, if it has one" },
  "kubelet-port": { type: "string", description: "Port of the kubelet API (logs, exec, attach, port-forward, stats); 0 picks a free one", default: "10250" },
  port: { type: "string", description: "Old name of --kubelet-port" },
  "kubelet-address": { type: "string", description: "Address the kubelet API listens on", default: "0.0.0.0" },
  "node-labels": { type: "string", description: "Extra node labels k=v,… (only those NodeRestriction lets a node set)" },
  "tls-cert-file": { type: "string", description: "The kubelet API's serving certificate (PEM; default: self-signed, kept in the state dir)" },
  "tls-private-key-file": { type: "string", description: "Key of --tls-cert-file" },
  "rotate-server-certificates": { type: "boolean", description: "Request the serving certificate from the cluster (CSR, signer kubernetes.io/kubelet-serving) and renew it", default: false },
  "client-ca-file": { type: "string", description: "CA bundle for client certificates (default: the cluster CA from the kubeconfig)" },
  "anonymous-auth": { type: "boolean", description: "Let requests without credentials in as system:anonymous (still authorized by the API server)", default: false },
  "max-pods": { type: "string", description: "Pods this node accepts (its pods capacity)", default: "110" },
  "system-reserved": { type: "string", description: "Resources kept for the host, taken off allocatable: cpu=500m,memory=1Gi" },
  "kube-reserved": { type: "string", description: "Resources kept for vks itself, taken off allocatable: cpu=100m,memory=256Mi" },
  "pod-max-pids": { type: "string", description: "Most processes a pod may have (TasksMax of its slice); 0: no limit", default: "0" },
  "disable-taint": { type: "boolean", description: "Do not taint the node virtual-kubelet.io/provider=vks:NoSchedule", default: false },
  "enable-node-lease": { type: "boolean", description: "Accepted for compatibility: vks always renews a node lease", default: false },
  "node-lease-duration-seconds": { type: "string", description: "Lease duration; renewed every quarter of it", default: "40" },
  "node-status-update-frequency": { type: "string", description: "Seconds between node condition checks", default: "10" },
  "startup-timeout": { type: "string", description: "Seconds to wait for the API server at start", default: "60" },
  "log-mode": { type: "string", description: "Where container output goes: auto, journal, file", default: "auto" },
  "apt-source": { type: "string", description: "APT source for images named host/package: host=<deb line> (repeatable)" },
  "pod-manifest-path": { type: "string", description: "Directory of static pod manifests (the kubelet's staticPodPath): each file runs as a pod, shown in the API as a mirror pod" },
  ...managerArgs,
} as const;

export default defineCommand({
  meta: {
    name: "serve",
    description: `Run this host as a Kubernetes node (a virtual kubelet): pods the cluster schedules here run as systemd units.

Examples:
  vks serve --kubeconfig ~/.rancher/k3s/server/cred/admin.kubeconfig --enable-node-lease --disable-taint
  vks serve --nodename edge-1 --node-ip 10.0.0.5     # kubeconfig from $KUBECONFIG or ~/.kube/config
  vks serve --kubeconfig node.kubeconfig --node-labels example.com/rack=r1 --rotate-server-certificates`,
  },
  args: serveArgs,
  async run({ args, rawArgs }) {
    const { serve } = await import("../internal/kube/serve.ts");
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    await serve(
      {
        kubeconfig: args.kubeconfig,
        nodeName: args.nodename,
        nodeIP: args["node-ip"],
        externalIP: args["node-external-ip"],
        nodeLabels: args["node-labels"],
        kubelet: {
          address: args["kubelet-address"],
          port: args.port === undefined ? parsePort(args["kubelet-port"], "--kubelet-port") : parsePort(args.port, "--port"),
          tlsCertFile: args["tls-cert-file"],
          tlsPrivateKeyFile: args["tls-private-key-file"],
          clientCaFile: args["client-ca-file"],
          rotateServerCertificates: args["rotate-server-certificates"],
          anonymousAuth: args["anonymous-auth"],
        },
        maxPods: parsePositiveInt(args["max-pods"], "--max-pods"),
        reserved: [parseReservation(args["system-reserved"], "--system-reserved"), parseReservation(args["kube-reserved"], "--kube-reserved")],
        podMaxPids: parsePositiveInt(args["pod-max-pids"], "--pod-max-pids"),
        taint: !args["disable-taint"],
        scope: scopeFromArgs(args),
        stateDir: args["state-dir"],
        logMode: parseLogModeSetting(args["log-mode"]),
        aptSources: parseAptSources(rawArgs),
        leaseDurationSeconds: parsePositiveInt(args["node-lease-duration-seconds"], "--node-lease-duration-seconds"),
        statusUpdateSeconds: parsePositiveInt(args["node-status-update-frequency"], "--node-status-update-frequency"),
        startupTimeoutSeconds: parsePositiveInt(args["startup-timeout"], "--startup-timeout"),
        podManifestPath: args["pod-manifest-path"],
      },
      stop.signal,
    );
  },
});
