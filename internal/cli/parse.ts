import { parseQuantity } from "../pod/quantity.ts";
import { ExitCode, VksError } from "../errors.ts";

export function parseOutputFormat<const T extends string>(value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new VksError(`--output: "${value}" is not a format`, { exitCode: ExitCode.usage, hint: `use one of: ${allowed.join(", ")}` });
}

export function parsePositiveInt(value: string, flag: string): number {
  if (!/^\d+$/.test(value)) {
    throw new VksError(`${flag}: "${value}" is not a whole number`, { exitCode: ExitCode.usage, hint: `e.g. ${flag} 20` });
  }
  return Number(value);
}

/** A TCP port, 0 included (the system picks a free one). */
export function parsePort(value: string, flag: string): number {
  const port = parsePositiveInt(value, flag);
  if (port > 65535) throw new VksError(`${flag}: ${port} is not a port (0-65535)`, { exitCode: ExitCode.usage, hint: `e.g. ${flag} 10250` });
  return port;
}

/**
 * `--apt-source host=<deb line>` may be given several times; citty keeps only the last value of a string
 * flag, so the raw arguments are read here.
 */
export function parseAptSources(rawArgs: string[]): Record<string, string> {
  const sources: Record<string, string> = {};
  rawArgs.forEach((arg, i) => {
    let value: string | undefined;
    if (arg === "--apt-source") value = rawArgs[i + 1];
    else if (arg.startsWith("--apt-source=")) value = arg.slice("--apt-source=".length);
    else return;
    const separator = value?.indexOf("=") ?? -1;
    if (value === undefined || separator <= 0) {
      throw new VksError(`--apt-source: expected host=<deb line>, got "${value ?? ""}"`, {
        exitCode: ExitCode.usage,
        hint: "e.g. --apt-source 'apt.example.com=deb [signed-by=/etc/apt/keyrings/example.gpg] https://apt.example.com stable main'",
      });
    }
    sources[value.slice(0, separator)] = value.slice(separator + 1);
  });
  return sources;
}

const RESERVABLE = ["cpu", "memory", "ephemeral-storage", "pid"];

/**
 * `--system-reserved` / `--kube-reserved` as the kubelet takes them: `cpu=500m,memory=1Gi` (also
 * ephemeral-storage and pid). Quantities are checked as the API server parses them.
 */
export function parseReservation(value: string | undefined, flag: string): Record<string, string> {
  const reserved: Record<string, string> = {};
  if (value === undefined || value.trim() === "") return reserved;
  for (const pair of value.split(",")) {
    const [name = "", amount = "", ...rest] = pair.split("=");
    const quantity = parseQuantity(amount.trim());
    if (rest.length > 0 || !RESERVABLE.includes(name.trim()) || quantity === undefined || quantity.numerator < 0n) {
      throw new VksError(`${flag}: "${pair}" is not a reservation`, {
        exitCode: ExitCode.usage,
        hint: `give name=quantity pairs of ${RESERVABLE.join(", ")}, e.g. ${flag} cpu=500m,memory=1Gi`,
      });
    }
    reserved[name.trim()] = amount.trim();
  }
  return reserved;
}
