/**
 * Fixtures the pod tests share: the unit systemd would report for a container of pod default/web, and the
 * field problems validatePod raises. One definition, so the status and init-container tests build their
 * units the same way and the validation tests read problems the same way.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { ValidationError, type FieldProblem } from "../../internal/errors.ts";
import { validatePod } from "../../internal/pod/validate.ts";
import { ExitKind, type UnitState } from "../../internal/systemd/types.ts";

export const UID = "0b9d8f2e-5a41-4c3b-9e7a-1f2d3c4b5a69";
export const HOST_IP = "192.0.2.10";

export function unitName(container: string): string {
  return `vks.default.web.${container}.${UID}.service`;
}

/**
 * The unit of `container` running since `startedAt` (microseconds since the epoch: callers choose how
 * precise, as systemd's timestamps carry sub-second noise); `fields` override any property.
 */
export function runningUnit(container: string, startedAt: bigint, fields: Partial<UnitState> = {}): UnitState {
  return {
    name: unitName(container),
    description: "",
    loadState: "loaded",
    activeState: "active",
    subState: "running",
    result: "success",
    mainPID: 4242,
    execMainCode: ExitKind.none,
    execMainStatus: 0,
    execMainStartTimestamp: startedAt,
    execMainExitTimestamp: 0n,
    activeEnterTimestamp: startedAt,
    inactiveEnterTimestamp: 0n,
    stateChangeTimestamp: startedAt,
    nRestarts: 0,
    ...fields,
  };
}

/** What validatePod rejects `candidate` for; empty when it accepts it. */
export function problemsOf(candidate: V1Pod): FieldProblem[] {
  try {
    validatePod(candidate, "pod.yaml");
  } catch (err) {
    if (err instanceof ValidationError) return err.problems;
    throw err;
  }
  return [];
}
