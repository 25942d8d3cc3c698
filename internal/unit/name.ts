/**
 * Unit names: `vks.<namespace>.<pod>.<container>.<uid>.service`.
 *
 * The name is the only link between a running unit and the pod it belongs to (units outlive vks), so it
 * must be decodable without any other state. Namespace, container and uid never contain a dot, so the
 * pod is exactly what lies between the first and the last two dot-separated fields: pod `a` and pod `a.b`
 * can never be confused. A name that would pass systemd's 255-byte limit gets a shortened pod part,
 * `<prefix>_<hash>`; `_` cannot occur in a pod name, so a shortened part never equals a real pod name and
 * parsing knows which one it is looking at.
 */
import { createHash } from "node:crypto";
import { ExitCode, VksError } from "../errors.ts";

export interface UnitIdentity {
  namespace: string;
  pod: string;
  container: string;
  /** The pod's metadata.uid. */
  uid: string;
}

export interface ParsedUnitName {
  namespace: string;
  /** The pod part as it appears in the unit name: the pod name itself, or `<prefix>_<hash>` when shortened. */
  pod: string;
  podShortened: boolean;
  container: string;
  uid: string;
}

/** Matches every unit vks may have created (and possibly some it did not: confirm with parseUnitName). */
export const VKS_UNIT_GLOB = "vks.*.service";

const UNIT_PREFIX = "vks.";
const UNIT_SUFFIX = ".service";
/** systemd's UNIT_NAME_MAX, counted in bytes and including the suffix. */
export const MAX_UNIT_NAME_BYTES = 255;

const DNS1123_LABEL_MAX = 63;
const DNS1123_SUBDOMAIN_MAX = 253;
/**
 * A UUID has 36 characters; the cap keeps room for a recognisable pod prefix when every other part is at
 * its maximum (4 + 63 + 1 + 63 + 1 + 64 + 8 separators and suffix leaves 50 bytes for the pod part).
 */
const UID_MAX = 64;
const POD_HASH_HEX_CHARS = 10;
const SHORTENED_POD_MARKER = "_";

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const UID_CHARS = /^[a-z0-9-]+$/;
const SHORTENED_POD = /^(.+)_[0-9a-f]{10}$/;

export function isDns1123Label(value: string): boolean {
  return value.length <= DNS1123_LABEL_MAX && DNS1123_LABEL.test(value);
}

export function isDns1123Subdomain(value: string): boolean {
  return value.length <= DNS1123_SUBDOMAIN_MAX && DNS1123_SUBDOMAIN.test(value);
}

function invalidPart(part: string, value: string, rule: string): VksError {
  return new VksError(`cannot name a unit for ${part} ${JSON.stringify(value)}: ${rule}`, {
    exitCode: ExitCode.invalidInput,
    hint: `fix the ${part} in the pod manifest`,
  });
}

const LABEL_RULE =
  "it must be a DNS-1123 label (at most 63 characters: lowercase letters, digits and '-', starting and ending with a letter or digit)";
const SUBDOMAIN_RULE =
  "it must be a DNS-1123 subdomain (at most 253 characters: dot-separated DNS-1123 labels)";

/** Lowercases the uid and checks it can be carried in a unit name unchanged. */
function normalizeUid(uid: string): string {
  const lowered = uid.toLowerCase();
  if (lowered.length === 0 || lowered.length > UID_MAX || !UID_CHARS.test(lowered)) {
    throw invalidPart(
      "pod uid",
      uid,
      `it must be 1 to ${UID_MAX} characters of letters, digits and '-' (normally a UUID)`,
    );
  }
  return lowered;
}

function podHash(pod: string): string {
  return createHash("sha256").update(pod).digest("hex").slice(0, POD_HASH_HEX_CHARS);
}

function assemble(namespace: string, podPart: string, container: string, uid: string): string {
  return `${UNIT_PREFIX}${namespace}.${podPart}.${container}.${uid}${UNIT_SUFFIX}`;
}

/** The unit name for one container of a pod. Throws a VksError naming the part that cannot be encoded. */
export function unitNameFor(id: UnitIdentity): string {
  if (!isDns1123Label(id.namespace)) throw invalidPart("namespace", id.namespace, LABEL_RULE);
  if (!isDns1123Subdomain(id.pod)) throw invalidPart("pod name", id.pod, SUBDOMAIN_RULE);
  if (!isDns1123Label(id.container)) throw invalidPart("container name", id.container, LABEL_RULE);
  const uid = normalizeUid(id.uid);

  // Every part is ASCII here, so string length equals byte length.
  const full = assemble(id.namespace, id.pod, id.container, uid);
  if (full.length <= MAX_UNIT_NAME_BYTES) return full;

  const suffix = SHORTENED_POD_MARKER + podHash(id.pod);
  const podBudget = MAX_UNIT_NAME_BYTES - (full.length - id.pod.length);
  // A prefix ending in '.' or '-' reads as a cut-off label; trimming keeps the name tidy and the pod's
  // first character is alphanumeric, so the prefix never becomes empty.
  const prefix = id.pod.slice(0, podBudget - suffix.length).replace(/[.-]+$/, "");
  return assemble(id.namespace, prefix + suffix, id.container, uid);
}

/**
 * Decodes a unit name made by unitNameFor; undefined for anything else, including foreign units that
 * merely start with "vks.": vks never touches a unit this returns undefined for.
 */
export function parseUnitName(name: string): ParsedUnitName | undefined {
  if (!name.startsWith(UNIT_PREFIX) || !name.endsWith(UNIT_SUFFIX)) return undefined;
  // Non-ASCII fails the patterns below anyway; measuring bytes keeps the limit honest regardless.
  if (Buffer.byteLength(name, "utf8") > MAX_UNIT_NAME_BYTES) return undefined;

  const fields = name.slice(UNIT_PREFIX.length, name.length - UNIT_SUFFIX.length).split(".");
  if (fields.length < 4) return undefined;
  const namespace = fields[0];
  const uid = fields[fields.length - 1];
  const container = fields[fields.length - 2];
  const pod = fields.slice(1, -2).join(".");
  if (namespace === undefined || uid === undefined || container === undefined) return undefined;

  if (!isDns1123Label(namespace) || !isDns1123Label(container)) return undefined;
  if (uid.length > UID_MAX || !UID_CHARS.test(uid)) return undefined;

  if (isDns1123Subdomain(pod)) return { namespace, pod, podShortened: false, container, uid };
  // unitNameFor trims the prefix to end in a letter or digit, which makes it a valid subdomain itself.
  const prefix = SHORTENED_POD.exec(pod)?.[1];
  if (prefix === undefined || !isDns1123Subdomain(prefix)) return undefined;
  return { namespace, pod, podShortened: true, container, uid };
}

export function isVksUnitName(name: string): boolean {
  return parseUnitName(name) !== undefined;
}

/**
 * Whether a unit belongs to the pod `namespace/pod`. Never compare name prefixes for this: the prefix
 * `vks.ns.a.` also starts the units of pod `a.b`, and shortened names do not contain the full pod name.
 */
export function isUnitOfPod(unitName: string, namespace: string, pod: string): boolean {
  const parsed = parseUnitName(unitName);
  if (parsed === undefined || parsed.namespace !== namespace) return false;
  if (!parsed.podShortened) return parsed.pod === pod;
  if (!isDns1123Subdomain(pod)) return false;
  // The shortened part depends on the other parts' lengths, so rebuild the whole name and compare.
  return unitNameFor({ namespace, pod, container: parsed.container, uid: parsed.uid }) === unitName;
}

/** The first 8 characters of a uid, enough to tell pods apart in a listing. */
export function shortUid(uid: string): string {
  return uid.slice(0, 8);
}
