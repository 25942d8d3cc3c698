import { consola } from "consola";
import { formatAge, renderTable } from "../cli/output.ts";
import { SystemdManager } from "../systemd/manager.ts";
import type { ManagerScope, UnitSummary } from "../systemd/types.ts";
import { VKS_UNIT_GLOB, parseUnitName, shortUid } from "../unit/name.ts";

export interface UnitRow {
  unit: string;
  namespace: string;
  pod: string;
  container: string;
  uid: string;
  activeState: string;
  subState: string;
  mainPID: number;
  restarts: number;
  /** When the main process last started; ISO 8601, or null when it never did. */
  since: string | null;
}

/** The vks units systemd knows, as rows; units that do not follow vks' naming scheme are never listed. */
export async function listVksUnits(scope: ManagerScope, namespace?: string): Promise<UnitRow[]> {
  // Only read-only property Gets follow: a wider window than the default 16 saves round-trip waits
  // (measured with 1000 units: 600 ms at 16 in flight, 510 ms at 128-256; the rest is decoding).
  const systemd = await SystemdManager.connect({ scope, maxCallsInFlight: 128 });
  try {
    return toRows(await systemd.listUnitSummaries([VKS_UNIT_GLOB]), namespace);
  } finally {
    await systemd.close();
  }
}

export function toRows(states: UnitSummary[], namespace?: string): UnitRow[] {
  const rows: UnitRow[] = [];
  for (const state of states) {
    const parsed = parseUnitName(state.name);
    if (!parsed || (namespace !== undefined && parsed.namespace !== namespace)) continue;
    const since = state.execMainStartTimestamp;
    rows.push({
      unit: state.name,
      namespace: parsed.namespace,
      pod: parsed.pod,
      container: parsed.container,
      uid: parsed.uid,
      activeState: state.activeState,
      subState: state.subState,
      mainPID: state.mainPID,
      restarts: state.nRestarts,
      since: since ? new Date(Number(since / 1000n)).toISOString() : null,
    });
  }
  // Byte order, as systemctl sorts units; localeCompare cost ~30 ms per 1,000 rows.
  return rows.sort((a, b) => (a.unit < b.unit ? -1 : a.unit > b.unit ? 1 : 0));
}

export function renderUnitTable(rows: UnitRow[]): string {
  if (rows.length === 0) return "No vks units.";
  return renderTable(
    ["UNIT", "NAMESPACE", "POD", "CONTAINER", "UID", "STATE", "PID", "RESTARTS", "AGE"],
    rows.map((row) => [
      row.unit,
      row.namespace,
      row.pod,
      row.container,
      shortUid(row.uid),
      `${row.activeState}/${row.subState}`,
      row.mainPID ? String(row.mainPID) : "-",
      String(row.restarts),
      row.since ? formatAge(new Date(row.since)) : "-",
    ]),
  );
}

/**
 * `vks units gc`: stops and removes vks units whose pod has no record. With a kubeconfig, also every pod
 * (record and units) the API server no longer assigns to this node. Units outside the naming scheme are
 * never touched. Returns the units removed (or, with dryRun, that would be).
 */
export async function collectGarbageUnits(options: {
  scope: ManagerScope;
  stateDir?: string;
  dryRun: boolean;
  kubeconfig?: string;
  nodeName?: string;
}): Promise<string[]> {
  const { PodEngine } = await import("../pod/engine.ts");
  const engine = await PodEngine.open({ scope: options.scope, stateDir: options.stateDir });
  try {
    const verb = options.dryRun ? "would remove" : "removed";
    let units: string[];
    if (options.kubeconfig !== undefined || options.nodeName !== undefined) {
      const { listPodsForThisNode } = await import("../kube/node-pods.ts");
      const desired = await listPodsForThisNode({ kubeconfig: options.kubeconfig, nodeName: options.nodeName });
      const removed = await engine.removePodsExcept(desired, options.dryRun);
      for (const pod of removed.pods) consola[options.dryRun ? "info" : "success"](`${verb} pod ${pod} (not on this node in the API server)`);
      units = removed.units;
    } else {
      units = await engine.removeOrphanUnits(options.dryRun);
    }
    for (const unit of units) consola[options.dryRun ? "info" : "success"](`${verb} ${unit}`);
    if (units.length === 0) consola.info("no orphaned vks units");
    const leftovers = await engine.removeOrphanState(options.dryRun);
    for (const path of leftovers) consola[options.dryRun ? "info" : "success"](`${verb} ${path} (state of a pod vks has no record of)`);
    return units;
  } finally {
    await engine.close();
  }
}
