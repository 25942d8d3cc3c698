/**
 * IP addresses as certificates carry them (iPAddress SANs: 4 or 16 octets) and as people write them.
 * Comparing SANs goes through octets, so "::1", "0:0:0:0:0:0:0:1" and "0::1" are one address.
 */
import { isIPv4, isIPv6 } from "node:net";

function ipv4Octets(text: string): number[] {
  return text.split(".").map(Number);
}

/**
 * The octets of an IPv4 or IPv6 address, or undefined when `text` is neither. IPv4-mapped IPv6
 * addresses (::ffff:a.b.c.d) become their 4 IPv4 octets, as Go's crypto/x509 writes them.
 */
export function ipAddressOctets(text: string): Buffer | undefined {
  if (isIPv4(text)) return Buffer.from(ipv4Octets(text));
  if (!isIPv6(text) || text.includes("%")) return undefined;
  let groupsText = text;
  let tail: number[] = [];
  const embedded = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (embedded?.[1] !== undefined) {
    tail = ipv4Octets(embedded[1]);
    groupsText = text.slice(0, -embedded[1].length) + "0:0";
  }
  const [head = "", rest] = groupsText.split("::");
  const parse = (part: string): number[] => (part === "" ? [] : part.split(":").map((group) => Number.parseInt(group, 16)));
  const headGroups = parse(head);
  const restGroups = rest === undefined ? [] : parse(rest);
  const zeros = rest === undefined ? 0 : 8 - headGroups.length - restGroups.length;
  const groups = [...headGroups, ...new Array<number>(zeros).fill(0), ...restGroups];
  const octets = Buffer.alloc(16);
  groups.forEach((group, index) => octets.writeUInt16BE(group, index * 2));
  if (tail.length === 4) Buffer.from(tail).copy(octets, 12);
  const mapped = octets.subarray(0, 10).every((octet) => octet === 0) && octets[10] === 0xff && octets[11] === 0xff;
  return mapped ? Buffer.from(octets.subarray(12)) : octets;
}

/** The canonical text of 4 or 16 octets: dotted IPv4, or RFC 5952 IPv6 (lower case, longest zero run as ::). */
export function formatIpAddress(octets: Uint8Array): string {
  if (octets.length === 4) return Array.from(octets).join(".");
  if (octets.length !== 16) throw new RangeError(`an IP address has 4 or 16 octets, not ${octets.length}`);
  const groups: number[] = [];
  for (let index = 0; index < 16; index += 2) groups.push((octets[index]! << 8) | octets[index + 1]!);
  let bestStart = -1;
  let bestLength = 0;
  for (let start = 0; start < 8; ) {
    if (groups[start] !== 0) {
      start++;
      continue;
    }
    let end = start;
    while (end < 8 && groups[end] === 0) end++;
    if (end - start > bestLength) {
      bestStart = start;
      bestLength = end - start;
    }
    start = end;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestLength < 2) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

/** `text` in canonical form, or undefined when it is not an IP address. */
export function canonicalIpAddress(text: string): string | undefined {
  const octets = ipAddressOctets(text);
  return octets === undefined ? undefined : formatIpAddress(octets);
}
