import type { ManagerScope } from "../systemd/types.ts";

/** Flags every command that talks to systemd accepts, so `--user` means the same everywhere. */
export const managerArgs = {
  user: {
    type: "boolean",
    description: "Use the calling user's systemd manager (session bus) instead of the system manager",
    default: false,
  },
  "state-dir": {
    type: "string",
    description: "Where vks keeps its pod records (default /var/lib/vks, or $XDG_STATE_HOME/vks with --user)",
  },
} as const;


/** `--user`, else VKS_USER=1, else the system manager. */
export function scopeFromArgs(args: { user?: boolean }, env: NodeJS.ProcessEnv = process.env): ManagerScope {
  if (args.user) return "user";
  return env.VKS_USER === "1" ? "user" : "system";
}
