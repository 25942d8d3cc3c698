/**
 * The pure translation of a validated pod into the transient units that run it: one unit per container.
 * Everything the translation needs from the host (resolved images, where bare commands live, the host
 * address) comes in through PlanInput, so a plan depends on nothing but its input.
 */
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { posix } from "node:path";
import { ExitCode, VksError } from "../errors.ts";
import type { ResolvedImage } from "../image/types.ts";
import type { ExecCommand, ServiceProperties, ServiceRestart, ServiceType, UnitPlan } from "../systemd/types.ts";
import { unitNameFor } from "../unit/name.ts";
import { containerEnv, type EnvResolution, type ResolvedEnvVar } from "./env.ts";
import { secretEnvFile } from "./env-file.ts";
import { EnvSourceError, type EnvObjects } from "./env-sources.ts";
import type { Allocatable } from "./resource-field.ts";
import { expandReferences } from "./expand.ts";
import { launchCommands } from "./launcher.ts";
import { BACKOFF_START_TIMEOUT_USEC, exitRecorderCommand, restartGateCommand, type RestartBackOffPaths } from "./restart-backoff.ts";
import { containerBinds } from "./volumes.ts";
import { containerCgroup, containerOomScoreAdjust, planPodSlice } from "./resources.ts";
import { sandboxProperties } from "./security.ts";
import type { RestartPolicy } from "./validate.ts";

/** Where container output goes: the journal, or one append-only file per container in `directory`. */
export type PlanLogs = { mode: "journal" } | { mode: "file"; directory: string };

export interface PlanInput {
  /** A pod validatePod accepted, with metadata.uid set (metadata.namespace defaults to "default"). */
  pod: V1Pod;
  /** The resolved image of every container, by container name. */
  images: Record<string, ResolvedImage>;
  /**
   * Absolute paths of the bare command names executablesNeeded listed, as the engine found them on PATH.
   * A needed name without an entry is reported as not found.
   */
  executables: Record<string, string>;
  logs: PlanLogs;
  /**
   * The host's address, for `valueFrom.fieldRef` on status.hostIP/podIP (pods share the host network).
   * Optional: without it, falls back to pod.status.hostIP, and a pod needing neither plans fine.
   */
  hostIP?: string;
  /**
   * The pod's volume directory (per pod UID, under the state dir): volume `v` lives in `<it>/v`. Needed
   * only when a container mounts a volume other than hostPath.
   */
  volumeDirectory?: string;
  /** The ConfigMaps and Secrets the pod's env refers to (fetched by the engine); absent: none exist. */
  envObjects?: EnvObjects;
  /** The node's allocatable resources, for resourceFieldRef on a limit the container does not set. */
  allocatable?: Allocatable;
  /** The node's memory capacity in bytes: Burstable containers' OOMScoreAdjust depends on it. */
  memoryCapacityBytes?: bigint;
  /**
   * Where the pod's secret env files go (per pod UID, under the state dir; see env-file.ts). Needed only
   * when a container has an env value from a Secret.
   */
  secretEnvDirectory?: string;
  /**
   * The restart back-off gate's script and the pod's entry directory (restart-backoff.ts). Absent: units
   * restart after RestartSec alone (systemd's fixed delay).
   */
  restartBackOff?: RestartBackOffPaths;
}

const MICROS_PER_SECOND = 1_000_000n;
export const DEFAULT_GRACE_PERIOD_SECONDS = 30;
/**
 * The kubelet never stops a container with less than 2 seconds of grace ("to avoid unnecessary
 * SIGKILLs"). It also keeps systemd from reading a grace of 0 as TimeoutStopSec=0, which means "wait
 * forever", the opposite of what a 0 asks for.
 */
export const MINIMUM_GRACE_PERIOD_SECONDS = 2;
/**
 * systemd's own wait before a restart. The kubelet's back-off (10 s doubling to 5 minutes) is the unit's
 * restart gate on top of it (restart-backoff.ts), which counts this second as part of the wait. The start
 * rate limit is disabled (startLimitIntervalUSec 0): with it, systemd would give up on a crash-looping
 * container for good, which the kubelet never does.
 */
export const RESTART_DELAY_USEC = 1n * MICROS_PER_SECOND;

function planError(message: string, hint: string): VksError {
  return new VksError(message, { exitCode: ExitCode.invalidInput, hint });
}

function restartPolicyOf(pod: V1Pod): RestartPolicy {
  const policy = pod.spec?.restartPolicy;
  return policy === "OnFailure" || policy === "Never" ? policy : "Always";
}

/** Restart=, and whether an exited unit stays loaded so its exit status can be reported. */
function restartSettings(policy: RestartPolicy): { restart: ServiceRestart; remainAfterExit: boolean } {
  switch (policy) {
    case "Always":
      return { restart: "always", remainAfterExit: false };
    case "OnFailure":
      return { restart: "on-failure", remainAfterExit: true };
    case "Never":
      return { restart: "no", remainAfterExit: true };
  }
}

/**
 * Restart= for an init container. A sidecar (restartPolicy Always on the init container) restarts
 * whatever the pod's policy, like an app container of an Always pod. A run-to-completion init container
 * is retried on failure unless the pod says Never (the kubelet treats Always as OnFailure for them), and
 * stays loaded once it exited so the sequence (and a vks restarted mid-sequence) sees that it succeeded.
 */
function initRestartSettings(policy: RestartPolicy, restartable: boolean): { restart: ServiceRestart; remainAfterExit: boolean } {
  if (restartable) return { restart: "always", remainAfterExit: false };
  return { restart: policy === "Never" ? "no" : "on-failure", remainAfterExit: true };
}

/** Which list of the pod spec a container comes from, and where in it. */
interface ContainerSlot {
  container: V1Container;
  /** `spec.containers[1]` or `spec.initContainers[0]`, for messages. */
  path: string;
  /** Present for init containers: their position in spec.initContainers. */
  initOrder?: number;
}

/** Init containers first, in order, then app containers: the order in which they start. */
function containerSlots(pod: V1Pod): ContainerSlot[] {
  return [
    ...(pod.spec?.initContainers ?? []).map((container, index) => ({ container, path: `spec.initContainers[${index}]`, initOrder: index })),
    ...(pod.spec?.containers ?? []).map((container, index) => ({ container, path: `spec.containers[${index}]` })),
  ];
}

/** True for a Kubernetes sidecar: an init container with `restartPolicy: Always`. */
export function isRestartableInitContainer(container: V1Container): boolean {
  return container.restartPolicy === "Always";
}

/** Where argv came from, for messages that must point at the field to change. */
interface Argv {
  argv: string[];
  /** Field path (or image description) that supplied argv[0]. */
  origin: string;
  /** Positions of argv words that expanded a `$(VAR)` holding a Secret's value. */
  secretWords: ReadonlySet<number>;
}

/**
 * Kubernetes' rules for combining a container with its image: `command` replaces the entrypoint and drops
 * the image's default arguments; `args` replaces only the default arguments; neither keeps both.
 * `$(VAR)` references in command and args are expanded against the container's env.
 */
function containerArgv(
  container: V1Container,
  containerPath: string,
  image: ResolvedImage,
  env: ResolvedEnvVar[],
): Argv {
  const byName = new Map(env.map((entry) => [entry.name, entry] as const));
  const secretWords = new Set<number>();
  const expand = (words: string[], offset: number) =>
    words.map((word, index) =>
      expandReferences(word, (name) => {
        const entry = byName.get(name);
        if (entry?.secret) secretWords.add(offset + index);
        return entry?.value;
      }),
    );
  const command = container.command;
  const args = container.args;
  if (command !== undefined && command.length > 0) {
    return { argv: expand([...command, ...(args ?? [])], 0), origin: `${containerPath}.command[0]`, secretWords };
  }
  const cmd = args !== undefined && args.length > 0 ? expand(args, image.entrypoint.length) : image.cmd;
  if (image.entrypoint.length > 0) {
    return { argv: [...image.entrypoint, ...cmd], origin: `the entrypoint of image "${image.reference}"`, secretWords };
  }
  const origin = args !== undefined && args.length > 0 ? `${containerPath}.args[0]` : `the default command of image "${image.reference}"`;
  return { argv: cmd, origin, secretWords };
}

function secretEnvFileOf(input: PlanInput, containerName: string): string {
  if (input.secretEnvDirectory === undefined) {
    throw new VksError(`container "${containerName}" has secret env but the plan input names no secretEnvDirectory`, {
      exitCode: ExitCode.software,
      hint: "this is a bug in vks: the engine passes the pod's secret env directory",
    });
  }
  return secretEnvFile(input.secretEnvDirectory, containerName);
}

function isBareName(program: string): boolean {
  return !program.includes("/");
}

function containerImage(images: Record<string, ResolvedImage>, container: V1Container, containerPath: string): ResolvedImage {
  const image = images[container.name];
  if (image === undefined) {
    throw new VksError(`${containerPath}: no resolved image for container "${container.name}"`, {
      exitCode: ExitCode.software,
      hint: "this is a bug in vks: every container's image must be resolved before planning",
    });
  }
  return image;
}

function podIdentity(pod: V1Pod): { namespace: string; name: string; uid: string } {
  const name = pod.metadata?.name;
  const uid = pod.metadata?.uid;
  if (!name || !uid) {
    throw new VksError("cannot plan a pod without metadata.name and metadata.uid", {
      exitCode: ExitCode.software,
      hint: "this is a bug in vks: pods are given a uid before they are planned",
    });
  }
  return { namespace: pod.metadata?.namespace || "default", name, uid };
}

/**
 * The bare program names (no `/`) the pod's containers start with, after `$(VAR)` expansion: the engine
 * resolves them on PATH and passes the results as PlanInput.executables. Containers whose image is not
 * in `images` are skipped. Variables from status fields are unknown here; the rare argv[0] made from one
 * keeps its `$(VAR)` text and is then reported as not found by planPod.
 */
export function executablesNeeded(pod: V1Pod, images: Record<string, ResolvedImage>, envObjects?: EnvObjects): string[] {
  const needed = new Set<string>();
  const resolution: EnvResolution = { mode: "lenient", host: {}, ...(envObjects === undefined ? {} : { objects: envObjects }) };
  containerSlots(pod).forEach(({ container, path: containerPath }) => {
    const image = images[container.name];
    if (image === undefined) return;
    const program = containerArgv(container, containerPath, image, containerEnv(pod, container, containerPath, resolution)).argv[0];
    if (program !== undefined && program !== "" && isBareName(program)) needed.add(program);
  });
  return [...needed];
}

/**
 * The image's environment with the container's laid over it: a container variable replaces an image
 * variable of the same name. No PATH is added: systemd gives every service a default PATH, and an
 * image or pod that needs another sets it.
 */
function mergedEnvironment(image: ResolvedImage, env: ResolvedEnvVar[]): string[] {
  const overridden = new Set(env.map(({ name }) => name));
  const fromImage = image.environment.filter((assignment) => {
    const separator = assignment.indexOf("=");
    return !overridden.has(separator === -1 ? assignment : assignment.slice(0, separator));
  });
  // Secret values go to the unit's env file instead (planContainer); they still hide the image's value.
  return [...fromImage, ...env.filter((entry) => !entry.secret).map(({ name, value }) => `${name}=${value}`)];
}

/** The user and group to run as: securityContext (container over pod) wins over the image's. */
function identity(
  pod: V1Pod,
  container: V1Container,
  containerPath: string,
  image: ResolvedImage,
): { user?: string; group?: string } {
  const runAsUser = container.securityContext?.runAsUser ?? pod.spec?.securityContext?.runAsUser;
  const runAsGroup = container.securityContext?.runAsGroup ?? pod.spec?.securityContext?.runAsGroup;
  const runAsNonRoot = container.securityContext?.runAsNonRoot ?? pod.spec?.securityContext?.runAsNonRoot;
  // A pod-chosen uid makes the image's group meaningless: as in Kubernetes, the group is then runAsGroup
  // or the uid's own primary group.
  const user = runAsUser !== undefined ? String(runAsUser) : image.user;
  const group = runAsGroup !== undefined ? String(runAsGroup) : runAsUser !== undefined ? undefined : image.group;
  if (runAsNonRoot === true && (user === undefined || user === "root" || user === "0")) {
    throw planError(
      `${containerPath}: runAsNonRoot is set but the container would run as root` +
        (user === undefined ? ` (image "${image.reference}" names no user)` : ""),
      `set ${containerPath}.securityContext.runAsUser to a non-zero uid`,
    );
  }
  return { ...(user === undefined ? {} : { user }), ...(group === undefined ? {} : { group }) };
}

/** systemd refuses Type=oneshot with Restart=always; a container is a long-running process anyway. */
function serviceType(image: ResolvedImage, restart: ServiceRestart): ServiceType {
  const type = image.type ?? "exec";
  return type === "oneshot" && restart === "always" ? "exec" : type;
}

function execStart(argv: Argv, workingDirectory: string | undefined, executables: Record<string, string>): ExecCommand {
  const program = argv.argv[0];
  if (program === undefined || program === "") {
    throw planError(`${argv.origin} is empty: there is no program to run`, "set the container's command");
  }
  let path: string;
  if (program.startsWith("/")) {
    path = program;
  } else if (!isBareName(program)) {
    // A relative path runs from the working directory, as a container runtime does.
    path = posix.join(workingDirectory ?? "/", program);
  } else {
    const found = executables[program];
    if (found === undefined) {
      throw planError(
        `${argv.origin}: program "${program}" was not found on PATH`,
        "install the package that provides it (name the package as the image), or give an absolute path",
      );
    }
    path = found;
  }
  return { path, argv: argv.argv, ignoreFailure: false };
}

function planContainer(input: PlanInput, { container, path: containerPath, initOrder }: ContainerSlot): UnitPlan {
  const { pod } = input;
  const { namespace, name, uid } = podIdentity(pod);
  const unitName = unitNameFor({ namespace, pod: name, container: container.name, uid });
  const image = containerImage(input.images, container, containerPath);
  const env = containerEnv(pod, container, containerPath, {
    mode: "strict",
    host: input.hostIP === undefined ? {} : { hostIP: input.hostIP },
    ...(input.envObjects === undefined ? {} : { objects: input.envObjects }),
    ...(input.allocatable === undefined ? {} : { allocatable: input.allocatable }),
  });
  const argv = containerArgv(container, containerPath, image, env);
  const secretEnv = env.filter((entry) => entry.secret).map(({ name, value }) => `${name}=${value}`);
  const secretFile = secretEnv.length > 0 || argv.secretWords.size > 0 ? secretEnvFileOf(input, container.name) : undefined;
  if (argv.secretWords.has(0)) {
    throw planError(`${argv.origin}: the program to run must not come from a Secret`, "name the program literally; pass the Secret as an argument or variable");
  }
  if (argv.argv.length === 0) {
    throw planError(
      `${containerPath}: image "${image.reference}" names no program to run${image.explanation ? ` (${image.explanation})` : ""}`,
      `set ${containerPath}.command to the program and its arguments`,
    );
  }
  const workingDirectory = container.workingDir ?? image.workingDirectory;
  const restartable = initOrder !== undefined && isRestartableInitContainer(container);
  const { restart, remainAfterExit } =
    initOrder === undefined ? restartSettings(restartPolicyOf(pod)) : initRestartSettings(restartPolicyOf(pod), restartable);
  const graceSeconds = Math.max(pod.spec?.terminationGracePeriodSeconds ?? DEFAULT_GRACE_PERIOD_SECONDS, MINIMUM_GRACE_PERIOD_SECONDS);
  const logFile = input.logs.mode === "file" ? posix.join(input.logs.directory, `${container.name}.log`) : undefined;
  // Commands holding `$` or `;` would reach the program altered after any daemon-reload (launcher.ts).
  const commands = launchCommands(
    {
      execStartPre: image.execStartPre,
      execStart: [execStart(argv, workingDirectory, input.executables)],
      environment: mergedEnvironment(image, env),
      ...(secretFile === undefined ? {} : { secretEnvironment: secretEnv, secretStartWords: argv.secretWords }),
    },
    (variable) => (env.some((entry) => entry.name === variable) ? `${containerPath}.env` : `the environment of image "${image.reference}"`),
  );

  // The kubelet's growing back-off between restarts, kept by the unit itself (restart-backoff.ts).
  const gate = restart !== "no" && input.restartBackOff !== undefined ? restartGateCommand(input.restartBackOff, container.name, Number(RESTART_DELAY_USEC / MICROS_PER_SECOND)) : undefined;
  const binds = containerBinds(pod, container, containerPath, env, input.volumeDirectory);
  const runAs = identity(pod, container, containerPath, image);
  const cgroup = containerCgroup(pod, container);
  // `-`: a mount point systemd has not made yet is no reason to fail the unit (binds stay writable anyway).
  const writablePaths = [...binds.bindPaths.map((bind) => `-${bind.destination}`), ...(logFile === undefined ? [] : [`-${posix.dirname(logFile)}`])];
  const sandbox = sandboxProperties({ pod, container, user: runAs.user, writablePaths });
  const properties: ServiceProperties = {
    description: `vks pod ${namespace}/${name} container ${container.name} (image ${image.reference})`,
    // A oneshot init container would hold its start job (and the engine's sequence) until it exits;
    // exec with RemainAfterExit reports its exit just the same.
    type: initOrder === undefined ? serviceType(image, restart) : serviceType(image, "always"),
    execStart: commands.execStart,
    execStartPre: gate === undefined ? commands.execStartPre : [gate, ...commands.execStartPre],
    // systemd clears a restarted unit's ExecMain*: the recorded exit is its lastState for any vks process.
    ...(gate === undefined || input.restartBackOff === undefined ? {} : { execStopPost: [exitRecorderCommand(input.restartBackOff, container.name)] }),
    environment: commands.environment,
    // The secret file comes last, so that the container's own values win over the image's files.
    environmentFiles: secretFile === undefined ? image.environmentFiles : [...image.environmentFiles, { path: secretFile, optional: false }],
    ...(workingDirectory === undefined ? {} : { workingDirectory }),
    ...runAs,
    runtimeDirectory: image.runtimeDirectory,
    restart,
    restartUSec: RESTART_DELAY_USEC,
    remainAfterExit,
    startLimitIntervalUSec: 0n,
    killSignal: 15,
    sendSIGKILL: true,
    timeoutStopUSec: BigInt(graceSeconds) * MICROS_PER_SECOND,
    ...(gate === undefined ? {} : { timeoutStartUSec: BACKOFF_START_TIMEOUT_USEC }),
    ...(logFile === undefined ? { syslogIdentifier: unitName } : { standardOutputFile: logFile, standardErrorFile: logFile }),
    logExtraFields: [`VKS_NAMESPACE=${namespace}`, `VKS_POD=${name}`, `VKS_POD_UID=${uid}`, `VKS_CONTAINER=${container.name}`],
    ...(binds.bindPaths.length === 0 ? {} : { bindPaths: binds.bindPaths }),
    ...(binds.bindReadOnlyPaths.length === 0 ? {} : { bindReadOnlyPaths: binds.bindReadOnlyPaths }),
    slice: planPodSlice(pod).unitName,
    ...(cgroup === undefined ? {} : { cgroup }),
    ...(sandbox === undefined ? {} : { sandbox }),
    ...(input.memoryCapacityBytes === undefined ? {} : { oomScoreAdjust: containerOomScoreAdjust(pod, container, input.memoryCapacityBytes) }),
  };
  return {
    unitName,
    containerName: container.name,
    properties,
    ...(secretFile === undefined ? {} : { secretEnvironment: { path: secretFile, assignments: commands.secretEnvironment ?? [] } }),
    ...(initOrder === undefined ? {} : { init: { order: initOrder, restartable } }),
  };
}

/**
 * One unit per container: init containers first (in spec order, each plan carrying its `init` place),
 * then app containers in spec order. Which of them start when is the engine's (init-sequence.ts).
 * Throws a VksError naming the pod and the field when a container cannot run.
 */
export function planPod(input: PlanInput): UnitPlan[] {
  const { namespace, name } = podIdentity(input.pod);
  return containerSlots(input.pod).map((slot) => {
    try {
      return planContainer(input, slot);
    } catch (err) {
      if (err instanceof EnvSourceError) throw err.prefixed(`pod ${namespace}/${name}: `);
      if (!(err instanceof VksError)) throw err;
      throw new VksError(`pod ${namespace}/${name}: ${err.message}`, err.options);
    }
  });
}
