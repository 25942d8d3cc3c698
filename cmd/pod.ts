import { defineCommand } from "citty";
import { managerArgs, scopeFromArgs } from "../internal/cli/flags.ts";
import { parseOutputFormat, parseAptSources, parsePositiveInt } from "../internal/cli/parse.ts";
import { ExitCode, VksError } from "../internal/errors.ts";
import { parseLogModeSetting } from "../internal/logs/logs.ts";

const up = defineCommand({
  meta: {
    name: "up",
    description: `Run the pods of a manifest as systemd units.

Examples:
  vks pod up examples/hello.yaml              # run in the foreground; Ctrl-C stops the pod
  vks pod up -d examples/sleep.yaml           # start and return
  cat pod.yaml | vks pod up --replace -d -    # recreate from standard input
  vks pod up -d deployment.yaml               # a Deployment's replicas, named as its controller would`,
  },
  args: {
    file: { type: "positional", description: "Manifest (YAML: Pods, or Deployment/ReplicaSet/StatefulSet/DaemonSet/Job to run their pod template); - for stdin", required: true },
    detach: { type: "boolean", alias: "d", description: "Start the pods and return instead of following them; they are started again at boot (vks pod restore)", default: false },
    ephemeral: { type: "boolean", description: "With -d: do not start the pods again after a reboot", default: false },
    replace: { type: "boolean", description: "Recreate pods that already run", default: false },
    "log-mode": { type: "string", description: "Where container output goes: auto (journal if journald runs, else files), journal, file", default: "auto" },
    "apt-source": { type: "string", description: "APT source for images named host/package: host=<deb line> (repeatable)" },
    ...managerArgs,
  },
  async run({ args, rawArgs }) {
    const { podUp } = await import("../internal/actions/pod-up.ts");
    process.exitCode = await podUp({
      file: args.file,
      scope: scopeFromArgs(args),
      stateDir: args["state-dir"],
      logMode: parseLogModeSetting(args["log-mode"]),
      detach: args.detach,
      ephemeral: args.ephemeral,
      replace: args.replace,
      aptSources: parseAptSources(rawArgs),
    });
  },
});

const down = defineCommand({
  meta: {
    name: "down",
    description: `Stop pods (honouring their grace periods) and remove their units.

Examples:
  vks pod down hello
  vks pod down -n web frontend
  vks pod down examples/hello.yaml`,
  },
  args: {
    target: { type: "positional", description: "Pod name, or a manifest file whose pods (and its workloads' pods) to stop", required: true },
    namespace: { type: "string", alias: "n", description: "Namespace of a pod given by name (default: default)" },
    "ignore-not-found": { type: "boolean", description: "A pod that does not exist is not an error", default: false },
    ...managerArgs,
  },
  async run({ args }) {
    const { podDown } = await import("../internal/actions/pod-query.ts");
    await podDown({
      targets: [args.target, ...args._.filter((extra) => extra !== args.target)],
      namespace: args.namespace,
      ignoreNotFound: args["ignore-not-found"],
      scope: scopeFromArgs(args),
      stateDir: args["state-dir"],
    });
  },
});

const ls = defineCommand({
  meta: {
    name: "ls",
    description: `List the pods vks runs on this host.

Examples:
  vks pod ls
  vks pod ls -n default -o yaml`,
  },
  args: {
    namespace: { type: "string", alias: "n", description: "Only pods of this namespace" },
    output: { type: "string", alias: "o", description: "table, json or yaml", default: "table" },
    ...managerArgs,
  },
  async run({ args }) {
    const { podList } = await import("../internal/actions/pod-query.ts");
    const output = parseOutputFormat(args.output, ["table", "json", "yaml"]);
    process.stdout.write((await podList({ namespace: args.namespace, output, scope: scopeFromArgs(args), stateDir: args["state-dir"] })) + "\n");
  },
});

const logs = defineCommand({
  meta: {
    name: "logs",
    description: `Print a container's output.

Examples:
  vks pod logs hello
  vks pod logs web -c nginx -f --tail 20`,
  },
  args: {
    name: { type: "positional", description: "Pod name", required: true },
    namespace: { type: "string", alias: "n", description: "Namespace (default: default)" },
    container: { type: "string", alias: "c", description: "Container (needed when the pod has several)" },
    follow: { type: "boolean", alias: "f", description: "Keep printing new output", default: false },
    tail: { type: "string", description: "Only the last N lines" },
    ...managerArgs,
  },
  async run({ args }) {
    const { podLogs } = await import("../internal/actions/pod-query.ts");
    await podLogs({
      name: args.name,
      namespace: args.namespace,
      container: args.container,
      follow: args.follow,
      tail: args.tail === undefined ? undefined : parsePositiveInt(args.tail, "--tail"),
      scope: scopeFromArgs(args),
      stateDir: args["state-dir"],
    });
  },
});

const exec = defineCommand({
  meta: {
    name: "exec",
    description: `Run a command in a running container, as kubectl exec does.

Examples:
  vks pod exec web -- cat /etc/os-release
  vks pod exec -it web -c nginx -- sh
  echo hello | vks pod exec -i web -- tr a-z A-Z`,
  },
  args: {
    name: { type: "positional", description: "Pod name, then -- and the command with its arguments", required: true },
    namespace: { type: "string", alias: "n", description: "Namespace (default: default)" },
    container: { type: "string", alias: "c", description: "Container (default: the kubectl.kubernetes.io/default-container annotation, else the first)" },
    stdin: { type: "boolean", alias: "i", description: "Pass standard input to the command", default: false },
    tty: { type: "boolean", alias: "t", description: "Give the command a terminal", default: false },
    ...managerArgs,
  },
  async run({ args, rawArgs }) {
    const separator = rawArgs.indexOf("--");
    const command = separator < 0 ? [] : rawArgs.slice(separator + 1);
    if (command.length === 0 || !rawArgs.slice(0, separator).includes(args.name)) {
      throw new VksError("vks pod exec needs a pod name, then -- and the command", {
        exitCode: ExitCode.usage,
        hint: "e.g. vks pod exec web -- ls -l /",
      });
    }
    const { podExec } = await import("../internal/actions/pod-exec.ts");
    process.exitCode = await podExec({
      name: args.name,
      namespace: args.namespace,
      container: args.container,
      stdin: args.stdin,
      tty: args.tty,
      command,
      scope: scopeFromArgs(args),
      stateDir: args["state-dir"],
    });
  },
});

const restore = defineCommand({
  meta: {
    name: "restore",
    description: `Start pod up -d pods again whose units are gone (at boot: vks-pods.service runs this), and remove the records of non-persistent ones.

Examples:
  vks pod restore`,
  },
  args: { ...managerArgs },
  async run({ args }) {
    const { podRestore } = await import("../internal/actions/pod-restore.ts");
    process.exitCode = await podRestore({ scope: scopeFromArgs(args), stateDir: args["state-dir"] });
  },
});

const checkpoint = defineCommand({
  meta: {
    name: "checkpoint",
    description: `Record every pod's restart counts so they continue after a reboot (vks-pods.service runs this at shutdown).

Examples:
  vks pod checkpoint`,
  },
  args: { ...managerArgs },
  async run({ args }) {
    const { podCheckpoint } = await import("../internal/actions/pod-restore.ts");
    await podCheckpoint({ scope: scopeFromArgs(args), stateDir: args["state-dir"] });
  },
});

export default defineCommand({
  meta: { name: "pod", description: "Run pod manifests on this host without a cluster" },
  subCommands: { up, down, ls, logs, exec, restore, checkpoint },
});
