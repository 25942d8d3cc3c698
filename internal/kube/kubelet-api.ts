/**
 * serve's kubelet API: the serving certificate (files, self-signed in the state dir, or issued by the
 * cluster through a CSR), client certificates checked against the cluster CA, tokens and permissions
 * checked through the API server's review APIs, and the node's pods from the engine.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { readFileSync } from "node:fs";
import { ExitCode, VksError, errorMessage } from "../errors.ts";
import { KubeletAuth } from "../kubelet/auth.ts";
import { ServingCertificate } from "../kubelet/certs/serving.ts";
import { createKubeletReadings } from "../kubelet/readings.ts";
import type { KubeletRuntime } from "../kubelet/runtime.ts";
import { KubeletApiServer } from "../kubelet/server.ts";
import type { KubeClient } from "./client.ts";
import { KubeCsrClient } from "./csr.ts";
import { ApiServerReviews } from "./reviews.ts";

export interface KubeletApiSettings {
  address: string;
  /** 0 picks a free port. */
  port: number;
  tlsCertFile?: string;
  tlsPrivateKeyFile?: string;
  clientCaFile?: string;
  rotateServerCertificates: boolean;
  anonymousAuth: boolean;
}

export interface KubeletApi {
  readonly port: number;
  stop(): Promise<void>;
}

export interface KubeletApiDependencies {
  client: KubeClient;
  kubeConfig: KubeConfig;
  nodeName: string;
  addresses: { internalIP: string; externalIP?: string; hostname: string };
  runtime: KubeletRuntime;
  stateDir: string;
  settings: KubeletApiSettings;
  onError: (message: string) => void;
}

/** Where the client CA came from, for the start-up line. */
export interface ClientCa {
  pem: string;
  source: string;
}

/**
 * --client-ca-file; else the cluster's client CA as the API server publishes it for delegated
 * authentication (kube-system/extension-apiserver-authentication, readable with admin credentials; k3s
 * signs client certificates with a CA of their own); else the CA the kubeconfig trusts, which is the
 * client CA too where one CA signs everything (kubeadm).
 */
async function findClientCa(settings: KubeletApiSettings, kubeConfig: KubeConfig, client: KubeClient): Promise<ClientCa | undefined> {
  if (settings.clientCaFile !== undefined) {
    try {
      return { pem: readFileSync(settings.clientCaFile, "utf8"), source: settings.clientCaFile };
    } catch (err) {
      throw new VksError(`--client-ca-file ${settings.clientCaFile}: ${errorMessage(err)}`, { exitCode: ExitCode.usage, hint: "pass a readable PEM bundle of the CA that signs client certificates" });
    }
  }
  try {
    const published = (await client.getConfigMap("kube-system", "extension-apiserver-authentication")).data?.["client-ca-file"];
    if (published !== undefined && published.includes("BEGIN CERTIFICATE")) return { pem: published, source: "kube-system/extension-apiserver-authentication" };
  } catch {
    // A node's own credentials may not read it (the Node authorizer); the kubeconfig's CA is next.
  }
  const cluster = kubeConfig.getCurrentCluster();
  if (cluster?.caData) return { pem: Buffer.from(cluster.caData, "base64").toString("utf8"), source: "the kubeconfig's cluster CA" };
  if (cluster?.caFile) {
    try {
      return { pem: readFileSync(cluster.caFile, "utf8"), source: cluster.caFile };
    } catch {
      return undefined;
    }
  }
  return undefined;
}

export async function startKubeletApi(dependencies: KubeletApiDependencies, signal: AbortSignal): Promise<KubeletApi> {
  const { settings, nodeName, addresses } = dependencies;
  const clientCa = await findClientCa(settings, dependencies.kubeConfig, dependencies.client);
  if (clientCa === undefined) {
    dependencies.onError("kubelet API: no client CA (the kubeconfig names none and --client-ca-file is not set): only bearer tokens can authenticate");
  }
  const nodeAddresses = [
    { type: "InternalIP" as const, address: addresses.internalIP },
    ...(addresses.externalIP === undefined ? [] : [{ type: "ExternalIP" as const, address: addresses.externalIP }]),
    { type: "Hostname" as const, address: nodeName },
  ];
  if (settings.rotateServerCertificates && settings.port === 0) {
    throw new VksError("--rotate-server-certificates needs a fixed --kubelet-port", {
      exitCode: ExitCode.usage,
      hint: "the node advertises its port before the certificate is issued; pass e.g. --kubelet-port 10250",
    });
  }
  const certificate = await ServingCertificate.open({
    stateDir: dependencies.stateDir,
    nodeName,
    hostname: addresses.hostname,
    addresses: nodeAddresses,
    ...(settings.tlsCertFile === undefined ? {} : { tlsCertFile: settings.tlsCertFile }),
    ...(settings.tlsPrivateKeyFile === undefined ? {} : { tlsPrivateKeyFile: settings.tlsPrivateKeyFile }),
    rotateServerCertificates: settings.rotateServerCertificates,
    ...(settings.rotateServerCertificates ? { csrClient: new KubeCsrClient(dependencies.kubeConfig, dependencies.client.server) } : {}),
  });
  const readings = createKubeletReadings({ runtime: dependencies.runtime, nodeName, stateDir: dependencies.stateDir });
  const server = new KubeletApiServer({
    address: settings.address,
    port: settings.port,
    nodeName,
    certificate,
    clientCaPem: clientCa?.pem,
    auth: new KubeletAuth(new ApiServerReviews(dependencies.client), {
      anonymous: settings.anonymousAuth,
      onUntrustedCertificate: (subject, reason) =>
        dependencies.onError(
          `kubelet API: a client certificate (${subject}) was not accepted: ${reason}; client certificates are checked against ${clientCa?.source ?? "no CA"}` +
            " (pass --client-ca-file with the CA that signs the API server's kubelet client certificate, e.g. k3s' server/tls/client-ca.crt)",
        ),
    }),
    runtime: dependencies.runtime,
    readings,
    onRequest: (pathClass, status) => readings.countRequest(pathClass, status),
    counters: readings.streamingCounters,
    onError: dependencies.onError,
  });
  const stopAll = async (): Promise<void> => {
    await certificate.close();
    await server.stop();
  };
  if (certificate.current() !== undefined) {
    try {
      return { port: await server.start(), stop: stopAll };
    } catch (err) {
      await certificate.close();
      throw err;
    }
  }
  // As the kubelet with server TLS bootstrap: the node registers (an approver may want to see it first)
  // while the CSR waits; the API answers once a certificate is issued.
  dependencies.onError(`kubelet API: waiting for a serving certificate from the cluster (approve the node's CSR: kubectl certificate approve …)`);
  certificate
    .ready(signal)
    .then(() => server.start())
    .catch((err: unknown) => {
      if (!signal.aborted) dependencies.onError(`kubelet API: ${errorMessage(err)}`);
    });
  return { port: settings.port, stop: stopAll };
}
