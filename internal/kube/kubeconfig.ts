/**
 * Where vks finds its cluster credentials, in kubectl's order: --kubeconfig, $KUBECONFIG, ~/.kube/config,
 * then the in-cluster service account. client-node's loadFromDefault would silently fall back to
 * http://localhost:8080 when nothing is found; a node that registers with the wrong cluster (or none) is
 * worse than an error, so every miss here is reported.
 */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { ExitCode, VksError, errorMessage } from "../errors.ts";

const SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token";

export interface LoadedKubeConfig {
  config: KubeConfig;
  /** Where it came from, for messages: a path, or "in-cluster service account". */
  source: string;
  /** The API server URL of the current context. */
  server: string;
}

function readFile(config: KubeConfig, path: string, how: string): void {
  if (!existsSync(path)) {
    throw new VksError(`kubeconfig ${path} (${how}) does not exist`, {
      exitCode: ExitCode.notFound,
      hint: "pass --kubeconfig with the path of a kubeconfig file (for k3s: /etc/rancher/k3s/k3s.yaml or ~/.rancher/k3s/server/cred/admin.kubeconfig)",
    });
  }
  try {
    config.loadFromFile(path);
  } catch (err) {
    throw new VksError(`kubeconfig ${path} cannot be read: ${errorMessage(err)}`, {
      exitCode: ExitCode.invalidInput,
      hint: "check that the file is a kubeconfig (YAML with clusters, users and contexts) readable by this user",
      cause: err,
    });
  }
}

/**
 * Loads the kubeconfig named by `explicitPath`, else by the environment, else the default locations.
 * Throws a VksError saying which file is missing or unusable.
 */
export function loadKubeConfig(explicitPath?: string, env: NodeJS.ProcessEnv = process.env): LoadedKubeConfig {
  const config = new KubeConfig();
  let source: string;
  if (explicitPath !== undefined && explicitPath !== "") {
    readFile(config, explicitPath, "--kubeconfig");
    source = explicitPath;
  } else if (env.KUBECONFIG) {
    const paths = env.KUBECONFIG.split(":").filter((p) => p !== "");
    const first = paths[0];
    if (first === undefined) throw new VksError("$KUBECONFIG is set but names no file", { exitCode: ExitCode.usage, hint: "unset it or pass --kubeconfig" });
    readFile(config, first, "$KUBECONFIG");
    for (const path of paths.slice(1)) {
      const next = new KubeConfig();
      readFile(next, path, "$KUBECONFIG");
      // kubectl's rule: the first file that sets a value wins, including current-context.
      config.mergeConfig(next, true);
    }
    source = env.KUBECONFIG;
  } else if (existsSync(join(homedir(), ".kube", "config"))) {
    source = join(homedir(), ".kube", "config");
    readFile(config, source, "default location");
  } else if (env.KUBERNETES_SERVICE_HOST && existsSync(SERVICE_ACCOUNT_TOKEN)) {
    config.loadFromCluster();
    source = "in-cluster service account";
  } else {
    throw new VksError("no kubeconfig: --kubeconfig not given, $KUBECONFIG not set, ~/.kube/config missing, and not running in a pod", {
      exitCode: ExitCode.usage,
      hint: "pass --kubeconfig with the path of the cluster's kubeconfig",
    });
  }

  const cluster = config.getCurrentCluster();
  if (cluster === null || !cluster.server) {
    throw new VksError(`kubeconfig ${source}: the current context (${JSON.stringify(config.getCurrentContext())}) names no cluster with a server`, {
      exitCode: ExitCode.invalidInput,
      hint: "set current-context to a context whose cluster has a server URL (kubectl config use-context NAME)",
    });
  }
  return { config, source, server: cluster.server };
}
