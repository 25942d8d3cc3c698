/**
 * The pieces under SystemdManager that need no systemd: object paths, job waiting (including JobRemoved
 * arriving before the reply), the concurrency limiter and the unit state cache's merging and ordering.
 */
import { describe, expect, test } from "bun:test";
import { Variant } from "dbus-next";
import { SystemdError } from "../../internal/errors.ts";
import { expectVariantDict } from "../../internal/systemd/dbus-values.ts";
import { ReconnectBackoff, SystemdDisconnectedError } from "../../internal/systemd/disconnected.ts";
import { JobTracker } from "../../internal/systemd/jobs.ts";
import { ConcurrencyLimiter } from "../../internal/systemd/limiter.ts";
import {
  escapeObjectPathLabel,
  unescapeObjectPathLabel,
  unitNameFromObjectPath,
  unitObjectPath,
} from "../../internal/systemd/object-path.ts";
import type { UnitState } from "../../internal/systemd/types.ts";
import { UnitStateCache, serviceLagsBehind, type FetchedProperties } from "../../internal/systemd/unit-cache.ts";
import { SERVICE_INTERFACE, UNIT_INTERFACE, type StateInterface } from "../../internal/systemd/unit-state.ts";

describe("unit object paths", () => {
  test("escape like sd-bus: non-alphanumerics and a leading digit become _xx", () => {
    expect(unitObjectPath("vks.default.web.nginx.1234.service")).toBe(
      "/org/freedesktop/systemd1/unit/vks_2edefault_2eweb_2enginx_2e1234_2eservice",
    );
    expect(escapeObjectPathLabel("1a-b_c")).toBe("_31a_2db_5fc");
    expect(escapeObjectPathLabel("")).toBe("_");
    expect(escapeObjectPathLabel("ü")).toBe("_c3_bc");
  });

  test("decode back to the unit name, and refuse other paths", () => {
    for (const name of ["vks.a.b.c.d.service", "dbus.socket", "1x.service", "ü-ñ.service", "a_b.service"]) {
      expect(unitNameFromObjectPath(unitObjectPath(name))).toBe(name);
    }
    expect(unitNameFromObjectPath("/org/freedesktop/systemd1/job/12")).toBeUndefined();
    expect(unitNameFromObjectPath("/org/freedesktop/systemd1/unit/")).toBeUndefined();
    expect(unitNameFromObjectPath("/org/freedesktop/systemd1/unit/a/b")).toBeUndefined();
    expect(unescapeObjectPathLabel("bad_zz")).toBeUndefined();
    expect(unescapeObjectPathLabel("_ff")).toBeUndefined();
  });
});

describe("JobTracker", () => {
  const job = (n: number, result = "done") => ({ jobPath: `/org/freedesktop/systemd1/job/${n}`, unitName: `u${n}`, result });

  test("a JobRemoved arriving before the reply is kept and matched", async () => {
    const jobs = new JobTracker();
    const finished = await jobs.run(async () => {
      jobs.jobRemoved(job(7));
      return job(7).jobPath;
    });
    expect(finished).toEqual(job(7));
  });

  test("a JobRemoved after the reply resolves the waiter with the job's result", async () => {
    const jobs = new JobTracker();
    const waiting = jobs.run(async () => job(8).jobPath);
    await Bun.sleep(0);
    jobs.jobRemoved(job(9, "done"));
    jobs.jobRemoved(job(8, "failed"));
    expect(await waiting).toEqual(job(8, "failed"));
  });

  test("two calls given the same job path (merged stop jobs) are both answered", async () => {
    const jobs = new JobTracker();
    const first = jobs.run(async () => job(3).jobPath);
    const second = jobs.run(async () => {
      jobs.jobRemoved(job(3));
      return job(3).jobPath;
    });
    expect(await Promise.all([first, second])).toEqual([job(3), job(3)]);
  });

  test("a merged job that ends while the second call's reply is on its way answers both", async () => {
    // Seen against the system manager: three concurrent stops of one unit, the first caller already
    // waiting, and JobRemoved parsed in the same read as a later caller's reply.
    const jobs = new JobTracker();
    const first = jobs.run(async () => job(6).jobPath);
    await Bun.sleep(0);
    let reply: (path: string) => void = () => {};
    const second = jobs.run(() => new Promise<string>((resolve) => (reply = resolve)));
    jobs.jobRemoved(job(6));
    reply(job(6).jobPath);
    expect(await Promise.all([first, second])).toEqual([job(6), job(6)]);
  });

  test("JobRemoved signals seen while no call is in flight are not kept", async () => {
    const jobs = new JobTracker();
    jobs.jobRemoved(job(4));
    let settled = false;
    const waiting = jobs.run(async () => job(4).jobPath).then(() => (settled = true));
    await Bun.sleep(0);
    expect(settled).toBe(false);
    jobs.jobRemoved(job(4));
    await waiting;
    expect(settled).toBe(true);
  });

  test("failAll rejects current and later waits with a SystemdError", async () => {
    const jobs = new JobTracker();
    const waiting = jobs.run(async () => job(5).jobPath);
    await Bun.sleep(0);
    jobs.failAll("bus gone");
    await expect(waiting).rejects.toBeInstanceOf(SystemdError);
    await expect(jobs.run(async () => job(6).jobPath)).rejects.toThrow(/bus gone/);
  });

  test("failPending rejects the waits under way only; later runs wait as usual", async () => {
    const jobs = new JobTracker();
    const waiting = jobs.run(async () => job(11).jobPath);
    await Bun.sleep(0);
    const lost = new SystemdDisconnectedError("bus lost");
    jobs.failPending(lost);
    await expect(waiting).rejects.toBe(lost);
    const later = jobs.run(async () => job(12).jobPath);
    await Bun.sleep(0);
    jobs.jobRemoved(job(12));
    expect(await later).toEqual(job(12));
  });

  test("a job whose reply arrives after the connection was lost is not waited for (its JobRemoved may be lost)", async () => {
    const jobs = new JobTracker();
    const lost = new SystemdDisconnectedError("bus lost");
    const waiting = jobs.run(async () => {
      jobs.failPending(lost);
      return job(13).jobPath;
    });
    await expect(waiting).rejects.toBe(lost);
  });

  test("a failing enqueue call rejects without leaving anything behind", async () => {
    const jobs = new JobTracker();
    await expect(jobs.run(() => Promise.reject(new Error("refused")))).rejects.toThrow("refused");
    const finished = await jobs.run(async () => {
      jobs.jobRemoved(job(10));
      return job(10).jobPath;
    });
    expect(finished.result).toBe("done");
  });
});

describe("ReconnectBackoff", () => {
  test("doubles from the first delay up to the cap, each delay jittered down by at most half", () => {
    const lowest = new ReconnectBackoff(100, 5000, () => 0);
    expect(Array.from({ length: 8 }, () => lowest.next())).toEqual([50, 100, 200, 400, 800, 1600, 2500, 2500]);
    const highest = new ReconnectBackoff(100, 5000, () => 0.999999);
    expect(Array.from({ length: 8 }, () => highest.next())).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000]);
  });
});

describe("ConcurrencyLimiter", () => {
  test("never runs more than its limit at once and runs everything", async () => {
    const limiter = new ConcurrencyLimiter(3);
    let running = 0;
    let peak = 0;
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        limiter.run(async () => {
          running++;
          peak = Math.max(peak, running);
          await Bun.sleep(0);
          running--;
          return i;
        }),
      ),
    );
    expect(peak).toBe(3);
    expect(results).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  test("a failing task frees its slot", async () => {
    const limiter = new ConcurrencyLimiter(1);
    await expect(limiter.run(() => Promise.reject(new Error("x")))).rejects.toThrow("x");
    expect(await limiter.run(async () => "next")).toBe("next");
  });

  test("rejects a nonsensical limit", () => {
    expect(() => new ConcurrencyLimiter(0)).toThrow(RangeError);
  });

  /** A task that runs until its gate opens, recording that it started. */
  function gated(started: string[], name: string): { task: () => Promise<string>; open: () => void } {
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    return {
      task: async () => {
        started.push(name);
        await gate;
        return name;
      },
      open: () => open(),
    };
  }

  test("bulk calls (job creation) leave reserved slots to urgent ones (status reads)", async () => {
    const limiter = new ConcurrencyLimiter(4);
    expect(limiter.reserved).toBe(1);
    const started: string[] = [];
    const bulk = Array.from({ length: 5 }, (_, i) => gated(started, `bulk${i}`));
    const runs = bulk.map((b) => limiter.run(b.task, "bulk"));
    await Bun.sleep(0);
    expect(started).toEqual(["bulk0", "bulk1", "bulk2"]);
    const urgent = gated(started, "urgent");
    const urgentRun = limiter.run(urgent.task);
    await Bun.sleep(0);
    // Three bulk calls hold three slots; the reserved fourth goes to the urgent call at once.
    expect(started).toEqual(["bulk0", "bulk1", "bulk2", "urgent"]);
    urgent.open();
    expect(await urgentRun).toBe("urgent");
    for (const b of bulk) b.open();
    expect(await Promise.all(runs)).toEqual(["bulk0", "bulk1", "bulk2", "bulk3", "bulk4"]);
  });

  test("a freed slot goes to a waiting urgent call before a waiting bulk one", async () => {
    const limiter = new ConcurrencyLimiter(4);
    const started: string[] = [];
    const bulk = Array.from({ length: 4 }, (_, i) => gated(started, `bulk${i}`));
    const bulkRuns = bulk.map((b) => limiter.run(b.task, "bulk"));
    const urgent = Array.from({ length: 2 }, (_, i) => gated(started, `urgent${i}`));
    const urgentRuns = urgent.map((u) => limiter.run(u.task));
    await Bun.sleep(0);
    // Full: bulk0-2 and urgent0 run, bulk3 and urgent1 wait (bulk3 came first).
    expect(started).toEqual(["bulk0", "bulk1", "bulk2", "urgent0"]);
    bulk[0]?.open();
    await bulkRuns[0];
    await Bun.sleep(0);
    expect(started.at(-1)).toBe("urgent1");
    bulk[1]?.open();
    await bulkRuns[1];
    await Bun.sleep(0);
    expect(started.at(-1)).toBe("bulk3");
    for (const gate of [...bulk, ...urgent]) gate.open();
    await Promise.all([...bulkRuns, ...urgentRuns]);
  });

  test("with a single slot, bulk calls still run", async () => {
    const limiter = new ConcurrencyLimiter(1);
    expect(limiter.reserved).toBe(0);
    expect(await limiter.run(async () => "bulk", "bulk")).toBe("bulk");
  });
});

describe("UnitStateCache", () => {
  const NAME = "vks.ns.pod.c.uid.service";
  const unitSignal = (overrides: Record<string, unknown> = {}) =>
    new Map<string, unknown>(
      Object.entries({
        ActiveState: "active",
        SubState: "running",
        ActiveEnterTimestamp: 10n,
        InactiveEnterTimestamp: 0n,
        StateChangeTimestamp: 10n,
        FreezerState: "running",
        ...overrides,
      }),
    );
  const serviceSignal = (overrides: Record<string, unknown> = {}) =>
    new Map<string, unknown>(
      Object.entries({
        MainPID: 42,
        Result: "success",
        NRestarts: 0,
        ExecMainStartTimestamp: 9n,
        ExecMainExitTimestamp: 0n,
        ExecMainCode: 0,
        ExecMainStatus: 0,
        StatusText: "",
        ...overrides,
      }),
    );

  interface PendingFetch {
    iface: StateInterface;
    properties: string[];
    resolve: (replies: FetchedProperties[]) => void;
    reject: (err: unknown) => void;
  }

  function harness() {
    const reported: UnitState[] = [];
    const fetches: PendingFetch[] = [];
    const failures: unknown[] = [];
    const cache = new UnitStateCache({
      fetch: (_unit, iface, properties) =>
        new Promise<FetchedProperties[]>((resolve, reject) => fetches.push({ iface, properties, resolve, reject })),
      changed: (state) => reported.push(state),
      fetchFailed: (_unit, err) => failures.push(err),
      isGone: (err) => err instanceof Error && err.message === "gone",
    });
    /** Lets the cache's deferred reports and fetch continuations run. */
    const settle = () => new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));
    return { cache, reported, fetches, failures, settle };
  }

  const describeFetch = (values: Record<string, unknown>, sequence: number): FetchedProperties[] =>
    Object.entries(values).map(([property, value]) => ({ values: new Map([[property, value]]), sequence }));

  test("fetches only what signals never carry, then reports one full state", async () => {
    const { cache, reported, fetches, settle } = harness();
    cache.propertiesChanged(NAME, SERVICE_INTERFACE, serviceSignal(), [], 1);
    cache.propertiesChanged(NAME, UNIT_INTERFACE, unitSignal(), [], 2);
    await settle();
    expect(fetches.map((f) => [f.iface, f.properties])).toEqual([[UNIT_INTERFACE, ["Description", "LoadState"]]]);
    fetches[0]?.resolve(describeFetch({ Description: "d", LoadState: "loaded" }, 3));
    await settle();
    expect(reported).toEqual([
      {
        name: NAME,
        description: "d",
        loadState: "loaded",
        activeState: "active",
        subState: "running",
        result: "success",
        mainPID: 42,
        execMainCode: 0,
        execMainStatus: 0,
        execMainStartTimestamp: 9n,
        execMainExitTimestamp: 0n,
        activeEnterTimestamp: 10n,
        inactiveEnterTimestamp: 0n,
        stateChangeTimestamp: 10n,
        nRestarts: 0,
      },
    ]);
  });

  test("merges later signals, coalesces a Unit+Service pair, and skips unchanged repeats", async () => {
    const { cache, reported, fetches, settle } = harness();
    cache.propertiesChanged(NAME, SERVICE_INTERFACE, serviceSignal(), [], 1);
    cache.propertiesChanged(NAME, UNIT_INTERFACE, unitSignal(), [], 2);
    await settle();
    fetches[0]?.resolve(describeFetch({ Description: "d", LoadState: "loaded" }, 3));
    await settle();
    // The process exits: systemd sends Service then Unit, back to back.
    cache.propertiesChanged(NAME, SERVICE_INTERFACE, serviceSignal({ MainPID: 0, ExecMainCode: 1, ExecMainExitTimestamp: 20n }), [], 4);
    cache.propertiesChanged(NAME, UNIT_INTERFACE, unitSignal({ SubState: "exited", StateChangeTimestamp: 20n }), [], 5);
    await settle();
    cache.propertiesChanged(NAME, UNIT_INTERFACE, unitSignal({ SubState: "exited", StateChangeTimestamp: 20n }), [], 6);
    await settle();
    expect(reported.map((s) => [s.subState, s.mainPID, s.execMainCode])).toEqual([
      ["running", 42, 0],
      ["exited", 0, 1],
    ]);
    expect(cache.get(NAME)?.subState).toBe("exited");
  });

  test("a signal received after a fetch reply beats the reply; one received before loses to it", async () => {
    const { cache, reported, fetches, settle } = harness();
    // Only Unit properties so far: the Service interface is fetched.
    cache.propertiesChanged(NAME, UNIT_INTERFACE, unitSignal(), [], 1);
    await settle();
    const serviceFetch = fetches.find((f) => f.iface === SERVICE_INTERFACE);
    const unitFetch = fetches.find((f) => f.iface === UNIT_INTERFACE);
    expect(serviceFetch?.properties).toContain("MainPID");
    // Received at 2 (before the reply at 3): older than the reply.
    cache.propertiesChanged(NAME, SERVICE_INTERFACE, serviceSignal({ MainPID: 1 }), [], 2);
    // Received at 5 (after the reply at 3): newer.
    cache.propertiesChanged(NAME, SERVICE_INTERFACE, serviceSignal({ MainPID: 0, NRestarts: 2 }), [], 5);
    serviceFetch?.resolve(
      describeFetch({ MainPID: 77, Result: "success", NRestarts: 1, ExecMainStartTimestamp: 9n, ExecMainExitTimestamp: 0n, ExecMainCode: 0, ExecMainStatus: 0 }, 3),
    );
    unitFetch?.resolve(describeFetch({ Description: "d", LoadState: "loaded" }, 4));
    await settle();
    expect(reported.at(-1)).toMatchObject({ mainPID: 0, nRestarts: 2 });
  });

  test("a Unit signal read apart from its Service signal: the half-updated state is checked, never reported", async () => {
    const { cache, reported, fetches, settle } = harness();
    cache.seed(NAME, { description: "d", loadState: "loaded" });
    cache.propertiesChanged(NAME, SERVICE_INTERFACE, serviceSignal(), [], 1);
    cache.propertiesChanged(NAME, UNIT_INTERFACE, unitSignal(), [], 2);
    await settle();
    expect(reported.map((r) => r.activeState)).toEqual(["active"]);
    // The process exits 3: systemd's Unit signal arrives, and the Service one is late.
    cache.propertiesChanged(NAME, UNIT_INTERFACE, unitSignal({ ActiveState: "failed", SubState: "failed" }), [], 3);
    await settle();
    expect(reported).toHaveLength(1);
    expect(fetches.map((f) => f.iface)).toEqual([SERVICE_INTERFACE]);
    fetches[0]?.resolve(describeFetch({ MainPID: 0, Result: "exit-code", ExecMainExitTimestamp: 11n, ExecMainCode: 1, ExecMainStatus: 3 }, 4));
    await settle();
    expect(reported).toHaveLength(2);
    expect(reported[1]).toMatchObject({ activeState: "failed", result: "exit-code", execMainCode: 1, execMainStatus: 3 });
  });

  test("a restart's Service signal read apart from its Unit signal: never reported as an exit with no status", async () => {
    const { cache, reported, fetches, settle } = harness();
    cache.seed(NAME, { description: "d", loadState: "loaded" });
    // The process exited 2 and systemd waits RestartSec: auto-restart with the exit status.
    cache.propertiesChanged(NAME, SERVICE_INTERFACE, serviceSignal({ MainPID: 0, Result: "exit-code", ExecMainCode: 1, ExecMainStatus: 2, ExecMainExitTimestamp: 11n }), [], 1);
    cache.propertiesChanged(NAME, UNIT_INTERFACE, unitSignal({ ActiveState: "activating", SubState: "auto-restart", StateChangeTimestamp: 11n }), [], 2);
    await settle();
    expect(reported.map((r) => [r.subState, r.execMainStatus])).toEqual([["auto-restart", 2]]);
    // The restart: systemd zeroes the exit status and sends Service first; the Unit half is read later.
    cache.propertiesChanged(NAME, SERVICE_INTERFACE, serviceSignal({ MainPID: 43, NRestarts: 1, ExecMainStartTimestamp: 12n }), [], 3);
    await settle();
    const torn = cache.get(NAME);
    expect(torn && serviceLagsBehind(torn)).toBe(true);
    expect(reported).toHaveLength(1);
    expect(fetches.map((f) => f.iface)).toEqual([SERVICE_INTERFACE]);
    cache.propertiesChanged(NAME, UNIT_INTERFACE, unitSignal({ StateChangeTimestamp: 12n }), [], 4);
    fetches[0]?.resolve(describeFetch({ MainPID: 43, NRestarts: 1, ExecMainStartTimestamp: 12n, ExecMainExitTimestamp: 0n, ExecMainCode: 0, ExecMainStatus: 0 }, 5));
    await settle();
    expect(reported.map((r) => [r.subState, r.mainPID, r.nRestarts])).toEqual([
      ["auto-restart", 0, 0],
      ["running", 43, 1],
    ]);
  });

  test("a state that still looks half-updated after the check is reported as systemd gave it", async () => {
    const { cache, reported, fetches, settle } = harness();
    cache.seed(NAME, { description: "d", loadState: "loaded" });
    cache.propertiesChanged(NAME, SERVICE_INTERFACE, serviceSignal(), [], 1);
    cache.propertiesChanged(NAME, UNIT_INTERFACE, unitSignal({ ActiveState: "failed", SubState: "failed" }), [], 2);
    await settle();
    expect(fetches).toHaveLength(1);
    fetches[0]?.resolve(describeFetch({ Result: "success" }, 3));
    await settle();
    expect(fetches).toHaveLength(1);
    expect(reported.map((r) => [r.activeState, r.result])).toEqual([["failed", "success"]]);
  });

  test("an invalidated property is fetched again before the state is reported", async () => {
    const { cache, reported, fetches, settle } = harness();
    cache.propertiesChanged(NAME, SERVICE_INTERFACE, serviceSignal(), [], 1);
    cache.propertiesChanged(NAME, UNIT_INTERFACE, unitSignal(), [], 2);
    await settle();
    fetches[0]?.resolve(describeFetch({ Description: "d", LoadState: "loaded" }, 3));
    await settle();
    cache.propertiesChanged(NAME, SERVICE_INTERFACE, new Map(), ["ExecMainStatus", "ExecStart"], 4);
    await settle();
    const refetch = fetches.at(-1);
    expect(refetch?.iface).toBe(SERVICE_INTERFACE);
    expect(refetch?.properties).toEqual(["ExecMainStatus"]);
    refetch?.resolve(describeFetch({ ExecMainStatus: 5 }, 5));
    await settle();
    expect(reported.map((s) => s.execMainStatus)).toEqual([0, 5]);
  });

  test("a unit gone before its fetch answered is dropped silently; other fetch errors are reported", async () => {
    const { cache, reported, fetches, failures, settle } = harness();
    cache.propertiesChanged(NAME, SERVICE_INTERFACE, serviceSignal(), [], 1);
    await settle();
    fetches[0]?.reject(new Error("gone"));
    await settle();
    expect(cache.get(NAME)).toBeUndefined();
    expect(failures).toEqual([]);

    const other = "vks.ns.other.c.uid.service";
    cache.propertiesChanged(other, SERVICE_INTERFACE, serviceSignal(), [], 2);
    await settle();
    fetches.at(-1)?.reject(new Error("timeout"));
    await settle();
    expect(failures).toHaveLength(1);
    expect(reported).toEqual([]);
  });

  test("refresh reads the whole state again and reports it even if unchanged; a signal during the reads wins", async () => {
    const { cache, reported, fetches, settle } = harness();
    const allUnit = { Description: "d", LoadState: "loaded", ActiveState: "active", SubState: "running", ActiveEnterTimestamp: 10n, InactiveEnterTimestamp: 0n, StateChangeTimestamp: 10n };
    const allService = { MainPID: 42, Result: "success", NRestarts: 0, ExecMainStartTimestamp: 9n, ExecMainExitTimestamp: 0n, ExecMainCode: 0, ExecMainStatus: 0 };
    const answer = (from: number, sequence: number, service: Record<string, unknown> = allService) => {
      for (const fetch of fetches.slice(from)) fetch.resolve(describeFetch(fetch.iface === UNIT_INTERFACE ? allUnit : service, sequence));
    };
    cache.refresh(NAME);
    await settle();
    expect(new Set(fetches.map((f) => f.iface))).toEqual(new Set<StateInterface>([SERVICE_INTERFACE, UNIT_INTERFACE]));
    answer(0, 1);
    await settle();
    expect(reported).toHaveLength(1);

    // The same state read again is reported again: the caller asked because it may have missed changes.
    cache.refresh(NAME);
    await settle();
    answer(2, 2);
    await settle();
    expect(reported).toHaveLength(2);
    expect(reported[1]).toEqual(reported[0] as UnitState);

    // The process exits while the reads are under way: the signal (received at 4) beats the replies (at 3).
    cache.refresh(NAME);
    await settle();
    cache.propertiesChanged(NAME, SERVICE_INTERFACE, serviceSignal({ MainPID: 0, ExecMainCode: 1, ExecMainStatus: 7, ExecMainExitTimestamp: 20n, Result: "exit-code" }), [], 4);
    answer(4, 3);
    await settle();
    expect(reported.at(-1)).toMatchObject({ mainPID: 0, execMainStatus: 7, result: "exit-code" });
  });

  test("a malformed value is reported as a fetch failure, not thrown into the event loop", async () => {
    const { cache, fetches, failures, settle } = harness();
    cache.propertiesChanged(NAME, SERVICE_INTERFACE, serviceSignal(), [], 1);
    await settle();
    fetches[0]?.resolve(describeFetch({ Description: 12, LoadState: "loaded" }, 2));
    await settle();
    expect(failures).toHaveLength(1);
  });
});

describe("expectVariantDict", () => {
  test("unwraps an a{sv} and refuses non-Variant entries", () => {
    expect(expectVariantDict({ A: new Variant("s", "x") }, "d")).toEqual(new Map([["A", "x"]]));
    expect(() => expectVariantDict({ A: "x" }, "d")).toThrow(/Variant/);
    expect(() => expectVariantDict([], "d")).toThrow(/a\{sv\}/);
  });
});
