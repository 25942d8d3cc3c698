#!/usr/bin/env bun
import { defineCommand, renderUsage, runCommand, type CommandDef } from "citty";
import { runCli } from "../internal/cli/run.ts";
import { version } from "../package.json";

// Subcommands are imported only when chosen: `vks --help` must not pay for the Kubernetes client or D-Bus.
const main = defineCommand({
  meta: {
    name: "vks",
    version,
    description: "A virtual kubelet for systemd: runs Kubernetes pods as systemd units on this host",
  },
  subCommands: {
    pod: () => import("./pod.ts").then((m) => m.default),
    units: () => import("./units.ts").then((m) => m.default),
    serve: () => import("./serve.ts").then((m) => m.default),
  },
});

await runCli(main as CommandDef, process.argv.slice(2), { renderUsage, runCommand });
