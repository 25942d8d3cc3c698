/**
 * Slice names for pods, after the kubelet's systemd cgroup driver (kubepods.slice,
 * kubepods-burstable.slice, kubepods-burstable-pod<uid>.slice):
 *
 *   vks.slice                                   every pod; Guaranteed pods directly below it
 *   vks-burstable.slice, vks-besteffort.slice   the other QoS classes
 *   vks[-<qos>]-<namespace>_<pod>_<uid>.slice   one per pod
 *
 * In a slice name every `-` opens a level of the hierarchy, so the namespace, pod and uid are escaped by
 * systemd's unit-name rules (`-` becomes `\x2d`, as systemd-escape writes it): pod `web-1` can never
 * land under a slice called `web`. The three parts are joined by `_`, which none of them may contain.
 */
import { createHash } from "node:crypto";

export type PodQOS = "Guaranteed" | "Burstable" | "BestEffort";

export const VKS_SLICE = "vks.slice";
/** Matches every slice vks makes (the parent vks.slice is systemd's own once a child exists). */
export const VKS_SLICE_GLOB = "vks-*.slice";
/** systemd's UNIT_NAME_MAX, in bytes with the suffix. */
const MAX_UNIT_NAME_BYTES = 255;
const HASH_HEX_CHARS = 10;

/** The QoS slice a pod's slice sits in. */
export function qosSliceName(qos: PodQOS): string {
  return qos === "Guaranteed" ? VKS_SLICE : `vks-${qos.toLowerCase()}.slice`;
}

/**
 * systemd's unit_name_escape for one component: letters, digits, `:`, `_` and `.` stay (a leading `.`
 * does not), everything else becomes `\xNN`.
 */
export function escapeUnitNameComponent(text: string): string {
  let escaped = "";
  for (const [index, char] of [...text].entries()) {
    const plain = /^[A-Za-z0-9:_.]$/.test(char) && !(index === 0 && char === ".");
    if (plain) {
      escaped += char;
      continue;
    }
    for (const byte of Buffer.from(char, "utf8")) escaped += `\\x${byte.toString(16).padStart(2, "0")}`;
  }
  return escaped;
}

export interface PodSliceIdentity {
  namespace: string;
  pod: string;
  uid: string;
  qos: PodQOS;
}

/**
 * The pod's own slice. The uid's first 8 characters tell a pod from a later one of the same name (its
 * slice may still be going away). A name past 255 bytes keeps a prefix of the pod name and a hash of it.
 */
export function podSliceName(id: PodSliceIdentity): string {
  const prefix = id.qos === "Guaranteed" ? "vks-" : `vks-${id.qos.toLowerCase()}-`;
  const namespace = escapeUnitNameComponent(id.namespace);
  const uid = escapeUnitNameComponent(id.uid.toLowerCase().slice(0, 8));
  const assemble = (pod: string) => `${prefix}${namespace}_${pod}_${uid}.slice`;
  const full = assemble(escapeUnitNameComponent(id.pod));
  if (Buffer.byteLength(full) <= MAX_UNIT_NAME_BYTES) return full;
  const hash = createHash("sha256").update(id.pod).digest("hex").slice(0, HASH_HEX_CHARS);
  const budget = MAX_UNIT_NAME_BYTES - Buffer.byteLength(assemble("")) - HASH_HEX_CHARS - 1;
  // Cut the pod name itself, never an escape sequence in half.
  let kept = "";
  for (const char of id.pod) {
    const next = escapeUnitNameComponent(kept + char);
    if (Buffer.byteLength(next) > budget) break;
    kept += char;
  }
  return assemble(`${escapeUnitNameComponent(kept)}.${hash}`);
}
