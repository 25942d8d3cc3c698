/**
 * One package install at a time: within this process (an async mutex) and across vks processes on the
 * host (an flock on a lock file). The host-wide lock is what makes it safe for vks to swap the host's
 * policy-rc.d during an install: two vks processes never overlap there.
 *
 * Bun has no flock(2); `flock(1)` from util-linux locks a descriptor it inherits, and since an flock
 * belongs to the open file description, the lock stays with vks' descriptor after flock(1) exits and
 * ends when vks closes it, or dies.
 */
import { closeSync, mkdirSync, openSync, readFileSync, writeSync, ftruncateSync } from "node:fs";
import { dirname } from "node:path";
import { errorMessage, ExitCode, VksError } from "../errors.ts";
import { runCommand } from "./command.ts";

export class AsyncMutex {
  private tail: Promise<void> = Promise.resolve();

  async runExclusive<T>(task: () => Promise<T>): Promise<T> {
    const previous = this.tail;
    let release: () => void = () => {};
    this.tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    await previous;
    try {
      return await task();
    } finally {
      release();
    }
  }
}

const FLOCK_TIMEOUT_EXIT = 1;

/**
 * Runs task while holding an exclusive flock on lockPath, waiting at most timeoutSeconds for it. The
 * holder's PID is written into the file so that a waiting vks can say whom it waits for.
 */
export async function withHostLock<T>(
  lockPath: string,
  timeoutSeconds: number,
  onWaiting: (message: string) => void,
  task: () => Promise<T>,
): Promise<T> {
  let fd: number;
  try {
    mkdirSync(dirname(lockPath), { recursive: true });
    fd = openSync(lockPath, "a+", 0o644);
  } catch (err) {
    throw new VksError(`cannot open the install lock ${lockPath}: ${errorMessage(err)}`, {
      exitCode: ExitCode.permission,
      hint: "installing packages needs root; run vks as root, or install the package on the host beforehand",
      cause: err,
    });
  }
  try {
    if ((await flock(fd, ["--nonblock"])) !== 0) {
      onWaiting(`waiting for another vks process (${holderOf(lockPath)}) to finish installing packages`);
      const exit = await flock(fd, ["--wait", String(timeoutSeconds)]);
      if (exit === FLOCK_TIMEOUT_EXIT) {
        throw new VksError(
          `another vks process (${holderOf(lockPath)}) kept installing packages for more than ${timeoutSeconds}s`,
          { exitCode: ExitCode.unavailable, hint: `wait for it to finish; its lock is ${lockPath}` },
        );
      }
      if (exit !== 0) throw lockFailure(lockPath, exit);
    }
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`);
    return await task();
  } finally {
    closeSync(fd);
  }
}

async function flock(fd: number, mode: string[]): Promise<number> {
  // fd 3 in the child is vks' descriptor for the lock file.
  return (await runCommand(["flock", "--exclusive", ...mode, "3"], { fd3: fd })).exitCode;
}

function holderOf(lockPath: string): string {
  try {
    const pid = readFileSync(lockPath, "utf8").trim();
    return /^[0-9]+$/.test(pid) ? `PID ${pid}` : "PID unknown";
  } catch {
    return "PID unknown";
  }
}

function lockFailure(lockPath: string, exit: number): VksError {
  return new VksError(`cannot lock ${lockPath} (flock exited with ${exit})`, {
    exitCode: ExitCode.unavailable,
    hint: "check that the directory is writable by vks and that util-linux' flock is installed",
  });
}
