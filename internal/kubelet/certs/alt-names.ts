/** Which names a node's serving certificate must carry, from the node's addresses, as the kubelet picks them. */
import { canonicalIpAddress } from "./ip.ts";
import type { AlternativeNames } from "./x509.ts";

/** A Node status address (structurally a V1NodeAddress). */
export interface NodeAddress {
  type: string;
  address: string;
}

function sortedUnique(values: Iterable<string>): string[] {
  return [...new Set(values)].sort();
}

/**
 * The SANs the kubelet requests in a serving CSR: InternalIP/ExternalIP as IP addresses, Hostname,
 * InternalDNS and ExternalDNS as DNS names (a Hostname that is an IP counts as an IP), without duplicates,
 * in a stable order so that an unchanged address list yields an unchanged request.
 */
export function csrAltNames(addresses: readonly NodeAddress[]): AlternativeNames {
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const { type, address } of addresses) {
    if (address === "") continue;
    const ip = canonicalIpAddress(address);
    if (type === "InternalIP" || type === "ExternalIP") {
      if (ip !== undefined) ipAddresses.push(ip);
    } else if (type === "Hostname") {
      if (ip !== undefined) ipAddresses.push(ip);
      else dnsNames.push(address);
    } else if (type === "InternalDNS" || type === "ExternalDNS") {
      dnsNames.push(address);
    }
  }
  return { dnsNames: sortedUnique(dnsNames), ipAddresses: sortedUnique(ipAddresses) };
}

/**
 * The SANs of the self-signed certificate: the node name, the host name and the node's addresses (so
 * the API server can reach the node by whichever it prefers), plus the loopback names for local clients.
 */
export function selfSignedAltNames(nodeName: string, hostname: string, addresses: readonly NodeAddress[]): AlternativeNames {
  const fromAddresses = csrAltNames(addresses);
  const dnsNames: string[] = [...fromAddresses.dnsNames, "localhost"];
  const ipAddresses: string[] = [...fromAddresses.ipAddresses, "127.0.0.1", "::1"];
  for (const name of [nodeName, hostname]) {
    const ip = canonicalIpAddress(name);
    if (ip !== undefined) ipAddresses.push(ip);
    else if (name !== "") dnsNames.push(name);
  }
  return { dnsNames: sortedUnique(dnsNames), ipAddresses: sortedUnique(ipAddresses) };
}
