/**
 * securityContext as systemd sandboxing, and what of it vks refuses. Pure.
 *
 * | field | systemd |
 * | supplementalGroups, fsGroup | SupplementaryGroups= (the kubelet adds fsGroup to every container's groups) |
 * | capabilities add/drop | CapabilityBoundingSet= from the container runtime's default set; added ones also AmbientCapabilities= for a non-root user |
 * | privileged | no capability, seccomp or AppArmor restriction at all |
 * | allowPrivilegeEscalation: false | NoNewPrivileges=yes |
 * | readOnlyRootFilesystem | ProtectSystem=strict, volumes and the pod's log directory in ReadWritePaths= |
 * | seccompProfile RuntimeDefault | SystemCallFilter=@system-service, SystemCallErrorNumber=EPERM |
 * | appArmorProfile Localhost | AppArmorProfile= |
 *
 * Refused (the pod would run with less isolation than it asks for, or differently): sysctls, seccomp and
 * AppArmor RuntimeDefault/Localhost that have no systemd counterpart, procMount Unmasked, seLinuxOptions,
 * supplementalGroupsPolicy Strict, windowsOptions.
 */
import type { V1Container, V1Pod, V1SecurityContext } from "@kubernetes/client-node";
import { CAPABILITIES, isCapabilityName } from "../systemd/capabilities.ts";
import type { SandboxProperties } from "../systemd/types.ts";

type Report = (path: string, message: string) => void;
type Fields = Record<string, unknown>;

function isFields(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** containerd's default capability set: what a container has unless its securityContext says otherwise. */
export const RUNTIME_DEFAULT_CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
] as const;

/** The errno systemd returns for a filtered call under RuntimeDefault, instead of killing the process. */
const EPERM = 1;
const SYSTEM_SERVICE_FILTER = ["@system-service"];
const MAX_GROUP_ID = 4294967294;

/** `NET_ADMIN` and `CAP_NET_ADMIN` both name CAP_NET_ADMIN, as container runtimes read them. */
function capabilityName(name: string): string {
  const upper = name.toUpperCase();
  return upper.startsWith("CAP_") ? upper : `CAP_${upper}`;
}

function checkCapabilityList(list: unknown, path: string, refuse: Report): string[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) {
    refuse(path, "must be a list of capability names");
    return [];
  }
  const names: string[] = [];
  list.forEach((item, index) => {
    if (typeof item !== "string") {
      refuse(`${path}[${index}]`, "must be a string");
      return;
    }
    if (item.toUpperCase() !== "ALL" && !isCapabilityName(capabilityName(item))) {
      refuse(`${path}[${index}]`, `unknown capability "${item}"`);
      return;
    }
    names.push(item);
  });
  return names;
}

function checkProfile(profile: unknown, path: string, kind: "seccomp" | "AppArmor", refuse: Report): void {
  if (profile === undefined || profile === null) return;
  if (!isFields(profile)) {
    refuse(path, "must be a mapping with type");
    return;
  }
  const type = profile.type;
  if (type === "Unconfined") return;
  if (kind === "seccomp" && type === "RuntimeDefault") return;
  if (kind === "AppArmor" && type === "Localhost") {
    if (typeof profile.localhostProfile !== "string" || profile.localhostProfile === "") {
      refuse(`${path}.localhostProfile`, "required when type is Localhost: the name of an AppArmor profile loaded on the host");
    }
    return;
  }
  if (kind === "seccomp" && type === "Localhost") {
    refuse(`${path}.type`, "not supported: vks cannot load a seccomp profile file; use RuntimeDefault (systemd's @system-service filter) or Unconfined");
    return;
  }
  if (kind === "AppArmor" && type === "RuntimeDefault") {
    refuse(`${path}.type`, "not supported: there is no container runtime's default AppArmor profile here; use Localhost with a profile loaded on the host, or Unconfined");
    return;
  }
  refuse(`${path}.type`, `Unsupported value: ${JSON.stringify(type)}: supported values: "RuntimeDefault", "Localhost", "Unconfined"`);
}

/**
 * Checks a securityContext for what vks cannot honour; `podLevel` for spec.securityContext. runAsUser,
 * runAsGroup and windowsOptions are validate.ts's.
 */
export function checkSecurityFields(context: Fields, path: string, podLevel: boolean, refuse: Report): void {
  checkProfile(context.seccompProfile, `${path}.seccompProfile`, "seccomp", refuse);
  checkProfile(context.appArmorProfile, `${path}.appArmorProfile`, "AppArmor", refuse);
  if (context.seLinuxOptions !== undefined && context.seLinuxOptions !== null) {
    refuse(`${path}.seLinuxOptions`, "not supported: vks sets no SELinux labels");
  }
  if (podLevel) {
    if (Array.isArray(context.sysctls) && context.sysctls.length > 0) {
      refuse(`${path}.sysctls`, "not supported: pods share the host's kernel settings and network namespace; set sysctls on the host");
    }
    if (context.supplementalGroupsPolicy !== undefined && context.supplementalGroupsPolicy !== "Merge") {
      refuse(`${path}.supplementalGroupsPolicy`, 'not supported: systemd always adds the groups /etc/group gives the user ("Merge")');
    }
    const groups = context.supplementalGroups;
    if (groups !== undefined && groups !== null) {
      if (!Array.isArray(groups)) refuse(`${path}.supplementalGroups`, "must be a list of group IDs");
      else {
        groups.forEach((group, index) => {
          if (typeof group !== "number" || !Number.isInteger(group) || group < 0 || group > MAX_GROUP_ID) {
            refuse(`${path}.supplementalGroups[${index}]`, `must be an integer from 0 to ${MAX_GROUP_ID}`);
          }
        });
      }
    }
    return;
  }
  if (context.procMount !== undefined && context.procMount !== null && context.procMount !== "Default") {
    refuse(`${path}.procMount`, 'not supported: processes see the host\'s /proc with its usual masking; only "Default" can be honoured');
  }
  const capabilities = context.capabilities;
  let added: string[] = [];
  if (capabilities !== undefined && capabilities !== null) {
    if (!isFields(capabilities)) refuse(`${path}.capabilities`, "must be a mapping with add and drop");
    else {
      added = checkCapabilityList(capabilities.add, `${path}.capabilities.add`, refuse);
      checkCapabilityList(capabilities.drop, `${path}.capabilities.drop`, refuse);
    }
  }
  // The API server's own rules.
  if (context.allowPrivilegeEscalation === false) {
    if (context.privileged === true) {
      refuse(`${path}.allowPrivilegeEscalation`, "cannot set allowPrivilegeEscalation to false and privileged to true");
    }
    if (added.some((name) => capabilityName(name) === "CAP_SYS_ADMIN")) {
      refuse(`${path}.allowPrivilegeEscalation`, "cannot set allowPrivilegeEscalation to false and capabilities.Add CAP_SYS_ADMIN");
    }
  }
}

/** containerd's rules: ALL in add gives everything, ALL in drop empties the set, then single adds, then single drops. */
function effectiveCapabilities(capabilities: NonNullable<V1SecurityContext["capabilities"]>): string[] {
  const add = capabilities.add ?? [];
  const drop = capabilities.drop ?? [];
  const isAll = (name: string) => name.toUpperCase() === "ALL";
  let set = new Set<string>(RUNTIME_DEFAULT_CAPABILITIES);
  if (add.some(isAll)) set = new Set(CAPABILITIES);
  if (drop.some(isAll)) set = new Set();
  for (const name of add) if (!isAll(name)) set.add(capabilityName(name));
  for (const name of drop) if (!isAll(name)) set.delete(capabilityName(name));
  // In bit order, so a plan never depends on how the manifest ordered them.
  return CAPABILITIES.filter((name) => set.has(name));
}

export interface SandboxInput {
  pod: V1Pod;
  container: V1Container;
  /** The user the process runs as (undefined: root, systemd's default). */
  user: string | undefined;
  /** Paths that must stay writable under a read-only root: writable volume mount points, the log directory. */
  writablePaths: string[];
}

function isRoot(user: string | undefined): boolean {
  return user === undefined || user === "0" || user === "root";
}

/** The container's sandboxing; undefined when its securityContext asks for none. */
export function sandboxProperties({ pod, container, user, writablePaths }: SandboxInput): SandboxProperties | undefined {
  const podContext = pod.spec?.securityContext;
  const context = container.securityContext;
  const sandbox: SandboxProperties = {};
  const groups = [...(podContext?.fsGroup === undefined ? [] : [podContext.fsGroup]), ...(podContext?.supplementalGroups ?? [])];
  if (groups.length > 0) sandbox.supplementaryGroups = [...new Set(groups.map(String))];
  const privileged = context?.privileged === true;
  if (!privileged) {
    if (context?.capabilities !== undefined) {
      sandbox.capabilityBoundingSet = effectiveCapabilities(context.capabilities);
      const added = (context.capabilities.add ?? []).filter((name) => name.toUpperCase() !== "ALL").map(capabilityName);
      const ambient = sandbox.capabilityBoundingSet.filter((name) => added.includes(name));
      // A non-root process would otherwise lose added capabilities at exec; root has its bounding set.
      if (!isRoot(user) && ambient.length > 0) sandbox.ambientCapabilities = ambient;
    }
    const seccomp = context?.seccompProfile ?? podContext?.seccompProfile;
    if (seccomp?.type === "RuntimeDefault") {
      sandbox.systemCallFilter = SYSTEM_SERVICE_FILTER;
      sandbox.systemCallErrorNumber = EPERM;
    }
    const appArmor = context?.appArmorProfile ?? podContext?.appArmorProfile;
    if (appArmor?.type === "Localhost" && appArmor.localhostProfile !== undefined) sandbox.appArmorProfile = appArmor.localhostProfile;
  }
  if (context?.allowPrivilegeEscalation === false) sandbox.noNewPrivileges = true;
  if (context?.readOnlyRootFilesystem === true) {
    sandbox.protectSystem = "strict";
    if (writablePaths.length > 0) sandbox.readWritePaths = [...new Set(writablePaths)];
  }
  return Object.keys(sandbox).length === 0 ? undefined : sandbox;
}
