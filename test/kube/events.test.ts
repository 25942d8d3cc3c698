// The event recorder's order of work: events wait while status writes are under way (both go to the same
// API server, and status is what users wait for), go as soon as the writes end, and never wait longer
// than EVENT_MAX_HOLD_MS.
import { describe, expect, test } from "bun:test";
import type { CoreV1Event, V1Pod } from "@kubernetes/client-node";
import { EVENT_MAX_HOLD_MS, EventRecorder } from "../../internal/kube/events.ts";

const pod: V1Pod = { metadata: { name: "web", namespace: "default", uid: "u-1" }, spec: { containers: [{ name: "c", image: "/bin/true" }] } };

function recorderWith(busy: { now: boolean }) {
  const sent: CoreV1Event[] = [];
  const client = {
    createEvent: (event: CoreV1Event) => {
      sent.push(event);
      return Promise.resolve(event);
    },
  };
  const recorder = new EventRecorder(client, "node-1", { statusWritesBusy: () => busy.now });
  return { recorder, sent };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("EventRecorder", () => {
  test("sends at once when no status write is under way", async () => {
    const { recorder, sent } = recorderWith({ now: false });
    recorder.record(pod, { type: "Normal", reason: "Started", message: "Started container c", container: "c" });
    await settle();
    expect(sent.map((event) => event.reason)).toEqual(["Started"]);
    recorder.stop();
  });

  test("holds events while status writes are under way and sends them, in order, when they end", async () => {
    const busy = { now: true };
    const { recorder, sent } = recorderWith(busy);
    for (const reason of ["Created", "Started"]) recorder.record(pod, { type: "Normal", reason, message: reason, container: "c" });
    await settle();
    expect(sent).toEqual([]);
    busy.now = false;
    recorder.resume();
    await settle();
    expect(sent.map((event) => event.reason)).toEqual(["Created", "Started"]);
    recorder.stop();
  });

  test("an event waits no longer than EVENT_MAX_HOLD_MS however busy status writes stay", async () => {
    const { recorder, sent } = recorderWith({ now: true });
    const started = performance.now();
    recorder.record(pod, { type: "Warning", reason: "BackOff", message: "Back-off restarting failed container", container: "c" });
    while (sent.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    const waited = performance.now() - started;
    expect(sent.map((event) => event.reason)).toEqual(["BackOff"]);
    expect(waited).toBeGreaterThanOrEqual(EVENT_MAX_HOLD_MS - 5);
    recorder.stop();
  });
});
