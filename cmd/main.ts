#!/usr/bin/env bun
import type { CommandDef } from "citty";
import { version } from "../package.json";

// citty and consola decide about colour when they load, so this comes before either is imported: escape
// codes in piped output (scripts, logs, CI) only get in the way.
if (!process.stdout.isTTY && process.env.FORCE_COLOR === undefined) process.env.NO_COLOR = "1";
const { defineCommand, renderUsage, runCommand } = await import("citty");
const { runCli } = await import("../internal/cli/run.ts");

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
    service: () => import("./service.ts").then((m) => m.default),
  },
});

await runCli(main as CommandDef, process.argv.slice(2), { renderUsage, runCommand });
