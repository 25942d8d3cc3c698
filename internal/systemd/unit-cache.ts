/**
 * The last known state of every vks unit, kept up to date from PropertiesChanged signals so that each
 * change can be reported as a complete UnitState.
 *
 * systemd's PropertiesChanged carries every changing property of one interface (Unit or Service) at once,
 * so most states are assembled from signals alone. What signals never carry (Description, LoadState) or
 * carry only as "invalidated" is fetched. A fetch races with signals: a signal received after the fetch's
 * reply is newer than the reply and wins; one received before it is older and is overwritten. Every
 * incoming message is numbered by BusConnection, which is what makes "before" and "after" exact.
 */
import type { UnitState } from "./types.ts";
import {
  FIELD_SOURCES,
  SERVICE_INTERFACE,
  type PartialUnitState,
  type StateInterface,
  completeState,
  fieldSourceOf,
  propertiesOf,
} from "./unit-state.ts";

/** One reply of a property fetch: the values it carried and its position among received messages. */
export interface FetchedProperties {
  values: ReadonlyMap<string, unknown>;
  sequence: number;
}

export type PropertyFetcher = (unitName: string, iface: StateInterface, properties: string[]) => Promise<FetchedProperties[]>;

export interface UnitCacheHooks {
  fetch: PropertyFetcher;
  changed: (state: UnitState) => void;
  /** A fetch failed for another reason than the unit being gone; the entry stays and the next signal retries. */
  fetchFailed: (unitName: string, err: unknown) => void;
  /** True when a fetch error means the unit no longer exists. */
  isGone: (err: unknown) => boolean;
}

interface SignalRecord {
  sequence: number;
  /** Properties the signal set or invalidated. */
  properties: Set<string>;
}

interface CacheEntry {
  state: PartialUnitState;
  /** Interfaces with a fetch in flight, each with the signals received for it since the fetch was sent. */
  fetching: Map<StateInterface, SignalRecord[]>;
  lastReported: UnitState | undefined;
  settleScheduled: boolean;
  /** The Service properties were re-read for the current half-updated look; reset by every signal. */
  serviceRechecked: boolean;
}

type KnownFields = Partial<Omit<UnitState, "name">>;

function fillField<K extends keyof KnownFields>(state: PartialUnitState, known: KnownFields, field: K): void {
  const fields: KnownFields = state;
  if (fields[field] === undefined) fields[field] = known[field];
}

/**
 * States that exist only between a unit's Unit signal and its Service signal: a failed unit whose Result
 * still says success, or a process that ended without an exit time. Under load the two signals can be
 * read apart, and reporting such a state would tell the pod's owner a container never started.
 */
export function serviceLagsBehind(state: UnitState): boolean {
  if (state.activeState === "failed" && state.result === "success") return true;
  const processEnded = ["exited", "failed", "dead", "auto-restart"].includes(state.subState);
  return processEnded && state.execMainStartTimestamp !== 0n && state.execMainExitTimestamp === 0n;
}

function sameState(a: UnitState, b: UnitState): boolean {
  return FIELD_SOURCES.every((source) => a[source.field] === b[source.field]);
}

export class UnitStateCache {
  private readonly entries = new Map<string, CacheEntry>();

  constructor(private readonly hooks: UnitCacheHooks) {}

  get(unitName: string): UnitState | undefined {
    const entry = this.entries.get(unitName);
    return entry ? completeState(entry.state) : undefined;
  }

  propertiesChanged(
    unitName: string,
    iface: StateInterface,
    changed: ReadonlyMap<string, unknown>,
    invalidated: readonly string[],
    sequence: number,
  ): void {
    const entry = this.entryFor(unitName);
    const touched = new Set<string>();
    for (const [property, value] of changed) {
      const source = fieldSourceOf(iface, property);
      if (!source) continue;
      source.assign(entry.state, value);
      touched.add(property);
    }
    for (const property of invalidated) {
      const source = fieldSourceOf(iface, property);
      if (!source) continue;
      entry.state[source.field] = undefined;
      touched.add(property);
    }
    if (touched.size === 0) return;
    entry.serviceRechecked = false;
    entry.fetching.get(iface)?.push({ sequence, properties: touched });
    this.scheduleSettle(unitName, entry);
  }

  /**
   * Fills fields the caller already knows (the description of a unit it is creating) so signals alone
   * complete the state and nothing needs fetching. Fields already known from systemd are kept.
   */
  seed(unitName: string, known: KnownFields): void {
    const entry = this.entryFor(unitName);
    for (const source of FIELD_SOURCES) fillField(entry.state, known, source.field);
  }

  /**
   * Reads the unit's whole state afresh and reports it once complete, whatever was reported before: after
   * a reconnection nothing systemd said while vks was away can be assumed to have arrived. Signals that
   * arrive during the reads win over them as usual.
   */
  refresh(unitName: string): void {
    const entry = this.newEntry(unitName);
    this.entries.set(unitName, entry);
    this.scheduleSettle(unitName, entry);
  }

  /** The unit is gone from systemd: forget it. Returns whether it was known. */
  forget(unitName: string): boolean {
    return this.entries.delete(unitName);
  }

  clear(): void {
    this.entries.clear();
  }

  private entryFor(unitName: string): CacheEntry {
    let entry = this.entries.get(unitName);
    if (!entry) {
      entry = this.newEntry(unitName);
      this.entries.set(unitName, entry);
    }
    return entry;
  }

  private newEntry(unitName: string): CacheEntry {
    return { state: { name: unitName }, fetching: new Map(), lastReported: undefined, settleScheduled: false, serviceRechecked: false };
  }

  /**
   * systemd sends a change as two signals, Unit then Service (or the reverse), back to back. Deciding
   * after the current batch of messages has been read gives one coherent report instead of a half-updated
   * state in between, and spares fetching what the second signal is about to bring.
   */
  private scheduleSettle(unitName: string, entry: CacheEntry): void {
    if (entry.settleScheduled) return;
    entry.settleScheduled = true;
    setImmediate(() => {
      entry.settleScheduled = false;
      if (this.entries.get(unitName) === entry) this.settle(unitName, entry);
    });
  }

  /** Reports the state if it is complete and new, else fetches what is missing. */
  private settle(unitName: string, entry: CacheEntry): void {
    const complete = completeState(entry.state);
    if (complete && serviceLagsBehind(complete) && !entry.serviceRechecked) {
      // Once per change: what systemd answers is the truth, even if it still looks odd.
      entry.serviceRechecked = true;
      if (!entry.fetching.has(SERVICE_INTERFACE)) this.startFetch(unitName, entry, SERVICE_INTERFACE, propertiesOf(SERVICE_INTERFACE));
      return;
    }
    if (complete) {
      if (entry.lastReported && sameState(entry.lastReported, complete)) return;
      entry.lastReported = complete;
      this.hooks.changed(complete);
      return;
    }
    const missingByInterface = new Map<StateInterface, string[]>();
    for (const source of FIELD_SOURCES) {
      if (entry.state[source.field] !== undefined || entry.fetching.has(source.interface)) continue;
      const list = missingByInterface.get(source.interface) ?? [];
      list.push(source.property);
      missingByInterface.set(source.interface, list);
    }
    for (const [iface, properties] of missingByInterface) this.startFetch(unitName, entry, iface, properties);
  }

  private startFetch(unitName: string, entry: CacheEntry, iface: StateInterface, properties: string[]): void {
    const signalsSinceSent: SignalRecord[] = [];
    entry.fetching.set(iface, signalsSinceSent);
    void this.fetchInto(unitName, entry, iface, properties, signalsSinceSent);
  }

  private async fetchInto(
    unitName: string,
    entry: CacheEntry,
    iface: StateInterface,
    properties: string[],
    signalsSinceSent: SignalRecord[],
  ): Promise<void> {
    let learned = 0;
    try {
      const replies = await this.hooks.fetch(unitName, iface, properties);
      if (this.entries.get(unitName) !== entry) return;
      for (const reply of replies) {
        for (const [property, value] of reply.values) {
          const source = fieldSourceOf(iface, property);
          if (!source) continue;
          // A signal that arrived after this reply already holds a newer value (or knows it is stale).
          const overtaken = signalsSinceSent.some((s) => s.sequence > reply.sequence && s.properties.has(property));
          if (!overtaken) source.assign(entry.state, value);
          learned++;
        }
      }
    } catch (err) {
      if (this.entries.get(unitName) !== entry) return;
      entry.fetching.delete(iface);
      if (this.hooks.isGone(err)) this.entries.delete(unitName);
      else this.hooks.fetchFailed(unitName, err);
      return;
    }
    entry.fetching.delete(iface);
    // systemd answered without the properties asked for: asking again at once would only loop.
    if (learned > 0) this.settle(unitName, entry);
  }
}
