import { defineCommand } from "citty";
import { managerArgs, scopeFromArgs } from "../internal/cli/flags.ts";
import { parseOutputFormat } from "../internal/cli/parse.ts";

const ls = defineCommand({
  meta: {
    name: "ls",
    description: `List the systemd units vks owns (named vks.<namespace>.<pod>.<container>.<uid>.service).

Examples:
  vks units ls
  vks units ls -n kube-system -o json`,
  },
  args: {
    namespace: { type: "string", alias: "n", description: "Only units of pods in this namespace" },
    output: { type: "string", alias: "o", description: "table or json", default: "table" },
    ...managerArgs,
  },
  async run({ args }) {
    const { listVksUnits, renderUnitTable } = await import("../internal/actions/units.ts");
    const output = parseOutputFormat(args.output, ["table", "json"]);
    const rows = await listVksUnits(scopeFromArgs(args), args.namespace);
    process.stdout.write((output === "json" ? JSON.stringify(rows, null, 2) : renderUnitTable(rows)) + "\n");
  },
});

const gc = defineCommand({
  meta: {
    name: "gc",
    description: `Stop and remove vks units whose pod vks no longer knows (including failed leftovers).
Units that do not follow vks' naming scheme are never touched.

With --kubeconfig, pods the API server no longer assigns to this node are removed too (what
\`vks serve\` does when it starts).

Examples:
  vks units gc --dry-run
  vks units gc
  vks units gc --kubeconfig ~/.kube/config --nodename edge-1`,
  },
  args: {
    "dry-run": { type: "boolean", description: "Only say what would be removed", default: false },
    kubeconfig: { type: "string", description: "Also remove pods the API server no longer assigns to this node" },
    nodename: { type: "string", description: "This node's name in the cluster (default: host name)" },
    ...managerArgs,
  },
  async run({ args }) {
    const { collectGarbageUnits } = await import("../internal/actions/units.ts");
    await collectGarbageUnits({
      scope: scopeFromArgs(args),
      stateDir: args["state-dir"],
      dryRun: args["dry-run"],
      kubeconfig: args.kubeconfig,
      nodeName: args.nodename,
    });
  },
});

export default defineCommand({
  meta: { name: "units", description: "Inspect and clean up the systemd units vks owns" },
  subCommands: { ls, gc },
});
