/**
 * The contract between the pure pod translation (internal/pod) and the D-Bus client (internal/systemd).
 * Plans are built from these types only; internal/systemd turns them into typed D-Bus properties. Nothing
 * here is ever rendered as unit-file text, so no manifest value can inject a directive.
 */

/** Which systemd manager vks talks to: the system manager (system bus) or the caller's user manager. */
export type ManagerScope = "system" | "user";

/** One ExecStart-style command: systemd's a(sasb) entry. argv[0] is what the process sees as its name. */
export interface ExecCommand {
  path: string;
  argv: string[];
  ignoreFailure: boolean;
  /** systemd's "+": run with full privileges, without User=, namespacing or sandboxing (ExecStartPreEx). */
  privileged?: boolean;
}

export type ServiceRestart = "no" | "always" | "on-failure";
export type ServiceType = "simple" | "exec" | "forking" | "oneshot" | "notify" | "dbus" | "idle";

/** The properties vks sets on a transient service unit. Durations are in microseconds, as systemd has them. */
export interface ServiceProperties {
  description: string;
  type: ServiceType;
  /** Arguments are given exactly as the process must receive them: internal/systemd escapes `$` and `%`. */
  execStart: ExecCommand[];
  execStartPre: ExecCommand[];
  /** Run after the main process ended (each run, before any restart); absent: none. */
  execStopPost?: ExecCommand[];
  /** `NAME=value` entries, passed to the process unchanged (values may hold any byte but NUL). */
  environment: string[];
  environmentFiles: { path: string; optional: boolean }[];
  workingDirectory?: string;
  user?: string;
  group?: string;
  runtimeDirectory: string[];
  restart: ServiceRestart;
  restartUSec: bigint;
  /** Keeps an exited unit (and its exit status) loaded until vks removes it. */
  remainAfterExit: boolean;
  /** 0 disables systemd's start rate limit, which would otherwise stop a crash-looping container for good. */
  startLimitIntervalUSec: bigint;
  killSignal: number;
  sendSIGKILL: boolean;
  timeoutStopUSec: bigint;
  /** TimeoutStartSec=; systemd's default (90 s) when absent. Each ExecStartPre is timed against it. */
  timeoutStartUSec?: bigint;
  /** Output goes to the journal when absent, else appended to these files (the kubelet's log files). */
  standardOutputFile?: string;
  standardErrorFile?: string;
  /** `VKS_POD_UID=…` style fields attached to every journal entry of the unit. */
  logExtraFields: string[];
  /**
   * SYSLOG_IDENTIFIER of the unit's output in the journal. The manager writes it into each stdout stream's
   * header, so it labels every line even when journald cannot attribute the line to the unit by its cgroup
   * (a process that has already exited); absent for output to files.
   */
  syslogIdentifier?: string;
  /** Pod volumes, writable and read-only; absent when the container mounts none. */
  bindPaths?: BindMount[];
  bindReadOnlyPaths?: BindMount[];
  /**
   * Units this one is ordered before ([Unit] Before=): at shutdown they stop first. Set by the engine for
   * pods `vks pod restore` brings back, so its ExecStop can record their restart counts while they still run.
   */
  before?: string[];
  /** The pod's slice (its cgroup parent). */
  slice?: string;
  /** Resource control (see CgroupProperties); absent: systemd's defaults. */
  cgroup?: CgroupProperties;
  /** securityContext as systemd sandboxing; absent: none. */
  sandbox?: SandboxProperties;
  /** OOMScoreAdjust= (-1000 … 1000): who the kernel's OOM killer picks first. */
  oomScoreAdjust?: number;
}

/**
 * Resource control shared by services and slices; every field is optional. Amounts are as systemd
 * has them: bytes, microseconds, CPUWeight 1-10000.
 */
export interface CgroupProperties {
  cpuWeight?: bigint;
  /** CPU time per second of wall time (CPUQuota=, systemd's CPUQuotaPerSecUSec). */
  cpuQuotaPerSecUSec?: bigint;
  cpuQuotaPeriodUSec?: bigint;
  memoryMax?: bigint;
  memorySwapMax?: bigint;
  tasksMax?: bigint;
}

/** systemd sandboxing a securityContext maps to. Capabilities are named (`CAP_CHOWN`), not bits. */
export interface SandboxProperties {
  supplementaryGroups?: string[];
  capabilityBoundingSet?: string[];
  ambientCapabilities?: string[];
  noNewPrivileges?: boolean;
  protectSystem?: "strict";
  /** Kept writable under ProtectSystem=strict. */
  readWritePaths?: string[];
  /** SystemCallFilter=: an allow-list of system calls and `@groups`. */
  systemCallFilter?: string[];
  /** errno returned for a filtered call (SystemCallErrorNumber=) instead of killing the process. */
  systemCallErrorNumber?: number;
  appArmorProfile?: string;
}

/** A pod's slice: its cgroup, in which its containers' units run. */
export interface SlicePlan {
  unitName: string;
  description: string;
  cgroup: CgroupProperties;
}

/**
 * One bind mount into the unit's own mount namespace: systemd's `(ssbt)` BindPaths entry. The source is
 * a host path; `destination` is where the unit's processes see it. Nothing is mounted in the host's view
 * (systemd creates a missing mount point on the host as an empty directory or file, though).
 */
export interface BindMount {
  source: string;
  destination: string;
  /** Skip the mount when the source does not exist (systemd's `-` prefix); otherwise the unit fails to start. */
  ignoreMissing: boolean;
  /** MS_REC: mounts below the source come along (systemd's default `rbind`). */
  recursive: boolean;
}

/** One unit vks wants to exist for a pod. */
export interface UnitPlan {
  unitName: string;
  containerName: string;
  properties: ServiceProperties;
  /**
   * Set only when the container has secret environment variables: the engine writes `assignments` to
   * `path` (mode 0600, systemd's EnvironmentFile= syntax) before starting the unit, whose
   * properties.environmentFiles name it. They never appear in properties.environment.
   */
  secretEnvironment?: { path: string; assignments: string[] };
  /**
   * Set only for an init container: its place in spec.initContainers (they start one after another, in
   * this order, before any app container), and whether it is restartable (`restartPolicy: Always`, a
   * sidecar that keeps running next to the app containers instead of running to completion).
   */
  init?: { order: number; restartable: boolean };
}

/** CLD_* codes systemd reports in ExecMainCode. */
export const ExitKind = { none: 0, exited: 1, killed: 2, dumped: 3 } as const;

/** What systemd says about one unit, read from org.freedesktop.systemd1.Unit and .Service properties. */
export interface UnitState {
  name: string;
  description: string;
  loadState: string;
  activeState: string;
  subState: string;
  /** Service.Result: success, exit-code, signal, core-dump, timeout, start-limit-hit, resources, … */
  result: string;
  mainPID: number;
  execMainCode: number;
  execMainStatus: number;
  /** Microseconds since the epoch; 0n when it never happened. */
  execMainStartTimestamp: bigint;
  execMainExitTimestamp: bigint;
  activeEnterTimestamp: bigint;
  inactiveEnterTimestamp: bigint;
  stateChangeTimestamp: bigint;
  nRestarts: number;
}

/** What `vks units ls` shows of a unit: the listing's own columns plus three reads, not a full UnitState. */
export interface UnitSummary {
  name: string;
  description: string;
  loadState: string;
  activeState: string;
  subState: string;
  mainPID: number;
  nRestarts: number;
  /** Microseconds since the epoch; 0n when the main process never started. */
  execMainStartTimestamp: bigint;
}
