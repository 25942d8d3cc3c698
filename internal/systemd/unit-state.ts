/**
 * Which D-Bus properties make up a UnitState, on which interface each lives, and how its value is read.
 * Shared by one-shot reads (getUnitState, listUnits) and by the change cache, so both agree on every field.
 */
import { expectBigInt, expectNumber, expectString } from "./dbus-values.ts";
import type { UnitState } from "./types.ts";

export const UNIT_INTERFACE = "org.freedesktop.systemd1.Unit";
export const SERVICE_INTERFACE = "org.freedesktop.systemd1.Service";
export type StateInterface = typeof UNIT_INTERFACE | typeof SERVICE_INTERFACE;

type StateField = Exclude<keyof UnitState, "name">;

/** A UnitState under construction: fields arrive from signals, GetAll replies or ListUnits rows. */
export type PartialUnitState = { name: string } & Partial<Omit<UnitState, "name">>;

interface FieldSource {
  field: StateField;
  interface: StateInterface;
  property: string;
  /** Reads a received value into `state`; throws UnexpectedDbusValue when it has the wrong type. */
  assign: (state: PartialUnitState, value: unknown) => void;
}

function source<K extends StateField>(
  field: K,
  iface: StateInterface,
  property: string,
  read: (value: unknown, what: string) => UnitState[K],
): FieldSource {
  return {
    field,
    interface: iface,
    property,
    assign: (state, value) => {
      const fields: Partial<UnitState> = state;
      fields[field] = read(value, `${state.name} ${property}`);
    },
  };
}

const u = UNIT_INTERFACE;
const s = SERVICE_INTERFACE;

export const FIELD_SOURCES: readonly FieldSource[] = [
  source("description", u, "Description", expectString),
  source("loadState", u, "LoadState", expectString),
  source("activeState", u, "ActiveState", expectString),
  source("subState", u, "SubState", expectString),
  source("activeEnterTimestamp", u, "ActiveEnterTimestamp", expectBigInt),
  source("inactiveEnterTimestamp", u, "InactiveEnterTimestamp", expectBigInt),
  source("stateChangeTimestamp", u, "StateChangeTimestamp", expectBigInt),
  source("result", s, "Result", expectString),
  source("mainPID", s, "MainPID", expectNumber),
  source("execMainCode", s, "ExecMainCode", expectNumber),
  source("execMainStatus", s, "ExecMainStatus", expectNumber),
  source("execMainStartTimestamp", s, "ExecMainStartTimestamp", expectBigInt),
  source("execMainExitTimestamp", s, "ExecMainExitTimestamp", expectBigInt),
  source("nRestarts", s, "NRestarts", expectNumber),
];

const SOURCE_BY_PROPERTY = new Map(FIELD_SOURCES.map((entry) => [`${entry.interface} ${entry.property}`, entry]));

export function fieldSourceOf(iface: string, property: string): FieldSource | undefined {
  return SOURCE_BY_PROPERTY.get(`${iface} ${property}`);
}

export function propertiesOf(iface: StateInterface): string[] {
  return FIELD_SOURCES.filter((entry) => entry.interface === iface).map((entry) => entry.property);
}

/** Copies the properties of `iface` found in `values` into `state`; returns how many of them it knew. */
export function applyProperties(state: PartialUnitState, iface: string, values: ReadonlyMap<string, unknown>): number {
  let applied = 0;
  for (const [property, value] of values) {
    const entry = fieldSourceOf(iface, property);
    if (!entry) continue;
    entry.assign(state, value);
    applied++;
  }
  return applied;
}

export function missingFields(state: PartialUnitState): StateField[] {
  return FIELD_SOURCES.filter((entry) => state[entry.field] === undefined).map((entry) => entry.field);
}

/** The state when every field is known; undefined while some are still missing. */
export function completeState(state: PartialUnitState): UnitState | undefined {
  const { name, description, loadState, activeState, subState, result, mainPID, execMainCode, execMainStatus } = state;
  const { execMainStartTimestamp, execMainExitTimestamp, activeEnterTimestamp, inactiveEnterTimestamp } = state;
  const { stateChangeTimestamp, nRestarts } = state;
  if (
    description === undefined ||
    loadState === undefined ||
    activeState === undefined ||
    subState === undefined ||
    result === undefined ||
    mainPID === undefined ||
    execMainCode === undefined ||
    execMainStatus === undefined ||
    execMainStartTimestamp === undefined ||
    execMainExitTimestamp === undefined ||
    activeEnterTimestamp === undefined ||
    inactiveEnterTimestamp === undefined ||
    stateChangeTimestamp === undefined ||
    nRestarts === undefined
  ) {
    return undefined;
  }
  return {
    name,
    description,
    loadState,
    activeState,
    subState,
    result,
    mainPID,
    execMainCode,
    execMainStatus,
    execMainStartTimestamp,
    execMainExitTimestamp,
    activeEnterTimestamp,
    inactiveEnterTimestamp,
    stateChangeTimestamp,
    nRestarts,
  };
}
