import { readFileSync } from "node:fs";
import { networkInterfaces } from "node:os";

/**
 * The address others reach this host on: the source address of the default route's interface, else the
 * first non-loopback IPv4 one. It is the node's InternalIP in serve and every pod's hostIP and podIP
 * (pods share the host's network), so pod up and serve must agree on it.
 */
export function detectHostIP(): string | undefined {
  const interfaces = networkInterfaces();
  const routes = readRoutes();
  for (const line of routes.split("\n").slice(1)) {
    const [iface, destination] = line.trim().split(/\s+/);
    if (destination !== "00000000" || iface === undefined) continue;
    const ipv4 = interfaces[iface]?.find((address) => address.family === "IPv4" && !address.internal);
    if (ipv4) return ipv4.address;
  }
  for (const addresses of Object.values(interfaces)) {
    const ipv4 = addresses?.find((address) => address.family === "IPv4" && !address.internal);
    if (ipv4) return ipv4.address;
  }
  return undefined;
}

function readRoutes(): string {
  try {
    return readFileSync("/proc/net/route", "utf8");
  } catch {
    return "";
  }
}
