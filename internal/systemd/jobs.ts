/**
 * Waiting for systemd jobs to finish.
 *
 * A method such as StartTransientUnit replies with a job path, and the job's end is announced by the
 * Manager's JobRemoved signal. systemd may send that signal before the reply (measured: about 1 start in
 * 400), so while any job-creating call is in flight every JobRemoved is kept, by job path, until its reply
 * has been seen. Outside that window nobody can be waiting for an unknown job, and nothing is kept.
 */
import { ExitCode, SystemdError } from "../errors.ts";

/** JobRemoved's result: done, canceled, timeout, failed, dependency, skipped, invalid, … */
export type JobResult = string;

export interface FinishedJob {
  jobPath: string;
  unitName: string;
  result: JobResult;
}

export class JobTracker {
  private enqueueing = 0;
  private readonly finishedEarly = new Map<string, FinishedJob>();
  private readonly waiters = new Map<string, Array<(job: FinishedJob) => void>>();
  private readonly rejecters = new Set<(err: Error) => void>();
  private failure: Error | undefined;
  /** Counts failPending calls, with the last one's error: a job enqueued before one may never be announced. */
  private interruptions = 0;
  private interruption: Error | undefined;

  /** Feed every JobRemoved signal here. */
  jobRemoved(job: FinishedJob): void {
    // Kept while any call is in flight even when someone already waits for it: systemd merges a stop into
    // a pending stop, and the merged caller's reply (same job path) may still be on its way.
    if (this.enqueueing > 0) this.finishedEarly.set(job.jobPath, job);
    const waiting = this.waiters.get(job.jobPath);
    if (waiting) {
      this.waiters.delete(job.jobPath);
      for (const resolve of waiting) resolve(job);
    }
  }

  /**
   * Runs `enqueue` (a call that replies with a job path) and resolves when that job has finished. Two
   * callers may get the same job path (systemd merges a stop into a pending stop): both are answered.
   */
  async run(enqueue: () => Promise<string>): Promise<FinishedJob> {
    if (this.failure) throw this.failure;
    const interruptions = this.interruptions;
    this.enqueueing++;
    let jobPath: string;
    try {
      jobPath = await enqueue();
    } finally {
      this.enqueueing--;
    }
    // Taking the early result and clearing happen in the same turn as the decrement, so no JobRemoved
    // meant for a caller still between its reply and this line can be dropped.
    const early = this.finishedEarly.get(jobPath);
    if (this.enqueueing === 0) this.finishedEarly.clear();
    if (early) return early;
    // The reply came, but the connection was lost before this wait began: its JobRemoved may be lost too.
    if (this.interruptions !== interruptions && this.interruption) throw this.interruption;
    return this.waitFor(jobPath);
  }

  private waitFor(jobPath: string): Promise<FinishedJob> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<FinishedJob>((resolve, reject) => {
      const settle = (job: FinishedJob): void => {
        this.rejecters.delete(reject);
        resolve(job);
      };
      const waiting = this.waiters.get(jobPath);
      if (waiting) waiting.push(settle);
      else this.waiters.set(jobPath, [settle]);
      this.rejecters.add(reject);
    });
  }

  /** Fails every wait, now and later: the connection that would have brought JobRemoved is gone for good. */
  failAll(reason: string): void {
    this.failure = new SystemdError(`stopped waiting for systemd jobs: ${reason}`, {
      exitCode: ExitCode.unavailable,
      hint: "the job may still complete; check with `systemctl list-jobs` and `vks units ls`",
    });
    this.failPending(this.failure);
  }

  /**
   * Fails the waits under way with `err` and forgets every early result: the JobRemoved signals they
   * wait for may have been sent while vks was not connected. Later runs wait as usual.
   */
  failPending(err: Error): void {
    this.interruptions++;
    this.interruption = err;
    const rejecters = [...this.rejecters];
    this.rejecters.clear();
    this.waiters.clear();
    this.finishedEarly.clear();
    for (const reject of rejecters) reject(err);
  }
}
