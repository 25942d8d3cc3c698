/**
 * Commands whose words would not survive a daemon-reload, run through a small shell launcher instead.
 *
 * Measured on systemd 252 (test/systemd/reload.test.ts tries every ASCII byte, test/e2e/reload.test.ts the
 * whole way through vks): after a daemon-reload systemd rebuilds each transient unit from the file it wrote
 * under /run, and that round trip is lossy for ExecStart=:
 * - an argument holding `$` or `;` comes back as `\$\$` / `\;` (systemd writes them escaped inside quotes
 *   and its own parser keeps the backslash);
 * - an executable path holding a control character, a space, `"`, `'`, `$`, `;` or `\` makes the unit
 *   unloadable ("bad-setting"), or, for a space, runs the wrong file.
 * Every other byte survives, and Environment= values survive byte for byte. So a command that would be
 * mangled becomes `/bin/sh -c STUB vks-exec SLOT`, whose words are all reload-safe, and its real program
 * and argv travel in Environment= entries. The launcher script contains `$` itself, so it cannot be in
 * ExecStart= either: it travels in the environment too (VKS_EXEC_SCRIPT), which keeps the unit
 * self-contained — no file that a container user might not be allowed to read (units run as User=, the
 * state directory is private), that could go missing, or that a newer vks could change under a running unit.
 *
 * What the program sees is what a direct ExecStart= gives it, with these measured exceptions:
 * - argv[0] is the word the manifest gave only when running that word from the launcher finds the very
 *   file vks resolved (the usual case: `sh` on PATH, or an absolute path); otherwise it is the resolved
 *   path, because a POSIX shell cannot set argv[0] (dash has no `exec -a`).
 * - dash always exports PWD, and resets IFS, OPTIND and PPID: the launcher restores the values
 *   Environment= gave them and drops PWD when it gave none (so a PWD that only came from a user manager's
 *   own environment, or from an EnvironmentFile=, is not passed on).
 * - A program that cannot be executed makes the unit fail with exit status 203, as systemd's own EXEC
 *   failure does, but after the unit started rather than during the start job; an executable file
 *   without `#!` is run by the shell instead of failing.
 * The program replaces the shell (exec), so MainPID is the program and signals reach it directly.
 */
import { ExitCode, VksError } from "../errors.ts";
import type { ExecCommand } from "../systemd/types.ts";
import { LAUNCHER_SCRIPT_VARIABLE, LAUNCHER_VARIABLE_PREFIX } from "../unit/launcher-variables.ts";

export const LAUNCHER_SHELL = "/bin/sh";
/** Absolute: the container's own PATH may not reach coreutils. */
const PRINTENV = "/usr/bin/printenv";
/** What the launched shell calls itself ($0), so its own error messages say where they come from. */
const LAUNCHER_NAME = "vks-exec";
/** Variables dash sets or resets at startup; the launcher puts back what Environment= said. */
const SHELL_OWNED_VARIABLES = ["PWD", "IFS", "OPTIND", "PPID"] as const;

/**
 * The launcher, as a POSIX sh script. $1 names the command's slot: VKS_EXEC_<slot>_PATH is the program,
 * VKS_EXEC_<slot>_ARGC the number of argv words and VKS_EXEC_<slot>_<i> each word. `eval` only ever sees
 * variable names built from a checked slot name and counters, never a value. Its own variables carry the
 * launcher prefix so it can never overwrite one of the container's exported variables.
 */
export const LAUNCHER_SCRIPT = `# vks-exec: runs one command of a vks container from the unit's environment (vks internal/pod/launcher.ts).
VKS_EXEC_slot=$1
case $VKS_EXEC_slot in
  '' | *[!A-Z0-9]*) printf '%s\\n' "vks-exec: invalid slot '$VKS_EXEC_slot'; recreate the pod" >&2; exit 203 ;;
esac
eval "VKS_EXEC_n=\\\${VKS_EXEC_\${VKS_EXEC_slot}_ARGC-} VKS_EXEC_path=\\\${VKS_EXEC_\${VKS_EXEC_slot}_PATH-}"
case $VKS_EXEC_n in
  '' | 0 | *[!0-9]*) echo "vks-exec: VKS_EXEC_\${VKS_EXEC_slot}_ARGC is missing or invalid; recreate the pod" >&2; exit 203 ;;
esac
eval "VKS_EXEC_arg0=\\\${VKS_EXEC_\${VKS_EXEC_slot}_0}"
set --
VKS_EXEC_i=1
while [ "$VKS_EXEC_i" -lt "$VKS_EXEC_n" ]; do
  eval "set -- \\"\\\$@\\" \\"\\\${VKS_EXEC_\${VKS_EXEC_slot}_\${VKS_EXEC_i}}\\""
  VKS_EXEC_i=$((VKS_EXEC_i + 1))
done

if [ ! -f "$VKS_EXEC_path" ] || [ ! -x "$VKS_EXEC_path" ]; then
  printf '%s\\n' "vks-exec: cannot execute $VKS_EXEC_path: no such executable file" >&2
  exit 203
fi

# The manifest's argv[0] when running that word reaches the same file; else the resolved path.
VKS_EXEC_run=$VKS_EXEC_path
case $VKS_EXEC_arg0 in
  "$VKS_EXEC_path") ;;
  */*) if [ "$VKS_EXEC_arg0" -ef "$VKS_EXEC_path" ]; then VKS_EXEC_run=$VKS_EXEC_arg0; fi ;;
  ?*)
    # dash's own PATH search, done first by hand to see which file the word would run.
    VKS_EXEC_rest=\${PATH-}:
    while [ -n "$VKS_EXEC_rest" ]; do
      VKS_EXEC_dir=\${VKS_EXEC_rest%%:*}
      VKS_EXEC_rest=\${VKS_EXEC_rest#*:}
      VKS_EXEC_file=\${VKS_EXEC_dir:-.}/$VKS_EXEC_arg0
      if [ -f "$VKS_EXEC_file" ] && [ -x "$VKS_EXEC_file" ]; then
        if [ "$VKS_EXEC_file" -ef "$VKS_EXEC_path" ]; then VKS_EXEC_run=$VKS_EXEC_arg0; fi
        break
      fi
    done ;;
esac
set -- "$VKS_EXEC_run" "$@"

# Every launched command of the unit shares the environment: none of their variables reach the program.
for VKS_EXEC_s in $VKS_EXEC_SLOTS; do
  case $VKS_EXEC_s in '' | *[!A-Z0-9]*) continue ;; esac
  eval "VKS_EXEC_m=\\\${VKS_EXEC_\${VKS_EXEC_s}_ARGC-0}"
  case $VKS_EXEC_m in *[!0-9]*) VKS_EXEC_m=0 ;; esac
  VKS_EXEC_i=0
  while [ "$VKS_EXEC_i" -lt "$VKS_EXEC_m" ]; do
    unset "VKS_EXEC_\${VKS_EXEC_s}_\${VKS_EXEC_i}"
    VKS_EXEC_i=$((VKS_EXEC_i + 1))
  done
  unset "VKS_EXEC_\${VKS_EXEC_s}_ARGC" "VKS_EXEC_\${VKS_EXEC_s}_PATH"
done

# Last, because IFS changes how the shell splits words. Of these only PWD is exported when the unit's
# environment lacks it (and OPTIND cannot even be unset in dash).
for VKS_EXEC_v in ${SHELL_OWNED_VARIABLES.join(" ")}; do
  if eval "[ -n \\"\\\${VKS_EXEC_ENV_\${VKS_EXEC_v}+set}\\" ]"; then
    eval "\${VKS_EXEC_v}=\\\$VKS_EXEC_ENV_\${VKS_EXEC_v}"
    export "$VKS_EXEC_v"
    unset "VKS_EXEC_ENV_\${VKS_EXEC_v}"
  elif [ "$VKS_EXEC_v" = PWD ]; then
    unset PWD
  fi
done
unset VKS_EXEC_SCRIPT VKS_EXEC_SLOTS VKS_EXEC_slot VKS_EXEC_n VKS_EXEC_path VKS_EXEC_arg0 VKS_EXEC_i \\
  VKS_EXEC_run VKS_EXEC_rest VKS_EXEC_dir VKS_EXEC_file VKS_EXEC_s VKS_EXEC_m VKS_EXEC_v
exec "$@"
`;

/**
 * What ExecStart= runs: fetches the launcher from the environment. Newline-separated because `;` and `$`
 * are exactly what cannot be here. Falls through to the error only when VKS_EXEC_SCRIPT is missing.
 */
const LAUNCHER_STUB = [
  `eval "\`${PRINTENV} ${LAUNCHER_SCRIPT_VARIABLE}\`"`,
  `echo '${LAUNCHER_NAME}: ${LAUNCHER_SCRIPT_VARIABLE} is missing from the environment: recreate the pod' >&2`,
  "exit 203",
].join("\n");

/** Bytes an ExecStart= argument loses across a daemon-reload on systemd 252. */
const RELOAD_UNSAFE_ARGUMENT = /[$;]/;
/** Bytes that make an ExecStart= executable path unloadable (or wrong) after a daemon-reload. */
const RELOAD_UNSAFE_PATH = /[\u0000-\u0020\u007f"$';\\]/;

/** Whether systemd 252 would still run this command unchanged after a daemon-reload. */
export function survivesReload(command: ExecCommand): boolean {
  return !RELOAD_UNSAFE_PATH.test(command.path) && !command.argv.some((word) => RELOAD_UNSAFE_ARGUMENT.test(word));
}

export interface LaunchedCommands {
  execStartPre: ExecCommand[];
  execStart: ExecCommand[];
  /** The given environment, followed by the launcher's variables when any command needed it. */
  environment: string[];
  /**
   * Present when secretEnvironment was given: it, followed by the launcher's variables that carry a
   * secret (argv words made from a Secret, a restored shell variable whose value is one).
   */
  secretEnvironment?: string[];
}

export interface CommandsToLaunch {
  execStartPre: ExecCommand[];
  execStart: ExecCommand[];
  environment: string[];
  /**
   * Assignments that must stay out of unit properties (they go to a root-only EnvironmentFile=). Their
   * names never repeat one of `environment`.
   */
  secretEnvironment?: string[];
  /**
   * Positions of execStart[0]'s argv words that hold a Secret's value: such a command always goes
   * through the launcher, and those words travel in secretEnvironment instead of ExecStart=.
   */
  secretStartWords?: ReadonlySet<number>;
}

function variableName(assignment: string): string {
  const separator = assignment.indexOf("=");
  return separator === -1 ? assignment : assignment.slice(0, separator);
}

/**
 * Routes every command that would not survive a daemon-reload through the launcher; the others, and
 * units where none needs it, are returned as they were. Pure: the launcher needs nothing on disk.
 * `describeEnvironment` names where a clashing variable came from, for the error message.
 */
export function launchCommands(commands: CommandsToLaunch, describeEnvironment: (name: string) => string): LaunchedCommands {
  const slots: string[] = [];
  const variables: string[] = [];
  const secretVariables: string[] = [];
  const noWords: ReadonlySet<number> = new Set();
  const launch = (command: ExecCommand, slot: string, secretWords: ReadonlySet<number>): ExecCommand => {
    if (survivesReload(command) && secretWords.size === 0) return command;
    slots.push(slot);
    variables.push(`${LAUNCHER_VARIABLE_PREFIX}${slot}_PATH=${command.path}`, `${LAUNCHER_VARIABLE_PREFIX}${slot}_ARGC=${command.argv.length}`);
    command.argv.forEach((word, index) => {
      (secretWords.has(index) ? secretVariables : variables).push(`${LAUNCHER_VARIABLE_PREFIX}${slot}_${index}=${word}`);
    });
    return { path: LAUNCHER_SHELL, argv: [LAUNCHER_SHELL, "-c", LAUNCHER_STUB, LAUNCHER_NAME, slot], ignoreFailure: command.ignoreFailure };
  };
  const execStartPre = commands.execStartPre.map((command, index) => launch(command, `PRE${index}`, noWords));
  const execStart = commands.execStart.map((command, index) => launch(command, `START${index}`, index === 0 ? (commands.secretStartWords ?? noWords) : noWords));
  const secretEnvironment = commands.secretEnvironment;
  const unchanged: LaunchedCommands = {
    execStartPre: commands.execStartPre,
    execStart: commands.execStart,
    environment: commands.environment,
    ...(secretEnvironment === undefined ? {} : { secretEnvironment }),
  };
  if (slots.length === 0) return unchanged;

  const clash = [...commands.environment, ...(secretEnvironment ?? [])].map(variableName).find((name) => name.startsWith(LAUNCHER_VARIABLE_PREFIX));
  if (clash !== undefined) {
    throw new VksError(`${describeEnvironment(clash)}: environment variable ${clash} is reserved for vks' command launcher`, {
      exitCode: ExitCode.invalidInput,
      hint:
        `rename the variable: names starting with ${LAUNCHER_VARIABLE_PREFIX} carry the argv of commands holding "$" or ";" ` +
        "(systemd would alter those words after a daemon-reload)",
    });
  }
  // systemd lets the last assignment of a name win; the launcher must restore that same value.
  const lastValues = new Map<string, { value: string; secret: boolean }>();
  const remember = (assignments: readonly string[], secret: boolean) => {
    for (const assignment of assignments) {
      const name = variableName(assignment);
      if (assignment.length > name.length) lastValues.set(name, { value: assignment.slice(name.length + 1), secret });
      else lastValues.delete(name);
    }
  };
  remember(commands.environment, false);
  remember(secretEnvironment ?? [], true);
  const shellOwned: string[] = [];
  for (const name of SHELL_OWNED_VARIABLES) {
    const last = lastValues.get(name);
    if (last !== undefined) (last.secret ? secretVariables : shellOwned).push(`${LAUNCHER_VARIABLE_PREFIX}ENV_${name}=${last.value}`);
  }
  return {
    execStartPre,
    execStart,
    environment: [
      ...commands.environment,
      ...variables,
      ...shellOwned,
      `${LAUNCHER_VARIABLE_PREFIX}SLOTS=${slots.join(" ")}`,
      `${LAUNCHER_SCRIPT_VARIABLE}=${LAUNCHER_SCRIPT}`,
    ],
    ...(secretEnvironment === undefined && secretVariables.length === 0 ? {} : { secretEnvironment: [...(secretEnvironment ?? []), ...secretVariables] }),
  };
}
