import { defineCommand } from "citty";
import { managerArgs, scopeFromArgs } from "../internal/cli/flags.ts";
import { parsePositiveInt } from "../internal/cli/parse.ts";
import { refuseUnknownFlags } from "../internal/cli/unknown-flags.ts";
import { serveArgs as serveFlags } from "./serve.ts";

const install = defineCommand({
  meta: {
    name: "install",
    description: `Install vks-serve.service (vks serve under systemd: Type=notify, watchdog, Restart=always; stopping it leaves pods running) and vks-pods.service (pod up -d pods started again at boot), and enable both.

Examples:
  vks service install --now -- --kubeconfig /etc/vks/kubeconfig --pod-manifest-path /etc/vks/manifests
  vks service install --user --binary $PWD/dist/vks -- --kubeconfig ~/.kube/config`,
  },
  args: {
    "unit-dir": { type: "string", description: "Where to write the unit files (default /etc/systemd/system, or ~/.config/systemd/user with --user)" },
    binary: { type: "string", description: "The vks binary the units run (default: this one)" },
    "watchdog-sec": { type: "string", description: "WatchdogSec= of vks-serve.service", default: "60" },
    "no-enable": { type: "boolean", description: "Only write the files and reload: enable nothing, start nothing", default: false },
    now: { type: "boolean", description: "Also (re)start vks-serve.service now", default: false },
    ...managerArgs,
  },
  async run({ args, rawArgs }) {
    // Everything after -- is vks serve's: refused now if serve would refuse it, not at the first boot.
    const separator = rawArgs.indexOf("--");
    const serveArgs = separator < 0 ? [] : rawArgs.slice(separator + 1);
    refuseUnknownFlags(serveArgs, serveFlags, "vks serve");
    const { serviceInstall } = await import("../internal/actions/service.ts");
    await serviceInstall({
      scope: scopeFromArgs(args),
      stateDir: args["state-dir"],
      unitDir: args["unit-dir"],
      binary: args.binary,
      serveArgs,
      watchdogSeconds: parsePositiveInt(args["watchdog-sec"], "--watchdog-sec"),
      noEnable: args["no-enable"],
      now: args.now,
    });
  },
});

export default defineCommand({
  meta: { name: "service", description: "Run vks itself under systemd" },
  subCommands: { install },
});
