/**
 * Every failure vks reports to a user is a VksError: it says what went wrong, how to fix it, and which
 * exit code a script will see. Anything else that escapes is a bug and exits with 70 (EX_SOFTWARE).
 */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  invalidInput: 65, // EX_DATAERR: a manifest or image reference is wrong
  notFound: 66, // EX_NOINPUT: no such pod, file or unit
  unavailable: 69, // EX_UNAVAILABLE: systemd, D-Bus, apt or the API server did not answer
  software: 70,
  conflict: 73, // EX_CANTCREAT: the pod already exists and --replace was not given
  permission: 77, // EX_NOPERM
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class VksError extends Error {
  override readonly name: string = "VksError";
  constructor(
    message: string,
    readonly options: { hint?: string; exitCode?: ExitCodeValue; cause?: unknown; retryAfterMs?: number } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
  }
  /** When a failure knows its own back-off (an image pull), how long a retry should wait; else undefined. */
  get retryAfterMs(): number | undefined {
    return this.options.retryAfterMs;
  }
  get hint(): string | undefined {
    return this.options.hint;
  }
  get exitCode(): ExitCodeValue {
    return this.options.exitCode ?? ExitCode.failure;
  }
}

/** One problem in a manifest, located by its field path (`spec.containers[1].name`). */
export interface FieldProblem {
  path: string;
  message: string;
}

export class ValidationError extends VksError {
  override readonly name = "ValidationError";
  constructor(
    readonly source: string,
    readonly problems: FieldProblem[],
  ) {
    super(
      `${source}: invalid pod manifest:\n` + problems.map((p) => `  ${p.path}: ${p.message}`).join("\n"),
      { exitCode: ExitCode.invalidInput, hint: "fix the fields named above; nothing was created" },
    );
  }
}

/** systemd or the bus did not answer, or refused a call. */
export class SystemdError extends VksError {
  override readonly name = "SystemdError";
}

export class NotFoundError extends VksError {
  override readonly name = "NotFoundError";
  constructor(message: string, hint?: string) {
    super(message, { exitCode: ExitCode.notFound, hint });
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
