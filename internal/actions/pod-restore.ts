/**
 * `vks pod restore` and `vks pod checkpoint`: what the shipped vks-pods.service runs at boot and at
 * shutdown so that `pod up -d` pods survive a reboot (see PodEngine.restore and checkpointRestarts).
 */
import { consola } from "consola";
import { PodEngine } from "../pod/engine.ts";
import type { ManagerScope } from "../systemd/types.ts";

export interface PodRestoreOptions {
  scope: ManagerScope;
  stateDir?: string;
}

/** Returns the exit code: 1 when a pod could not be started again (the others are). */
export async function podRestore(options: PodRestoreOptions): Promise<number> {
  const engine = await PodEngine.open({ scope: options.scope, stateDir: options.stateDir, onProgress: (message) => consola.info(message) });
  try {
    const result = await engine.restore();
    for (const pod of result.restored) consola.success(`pod ${pod} started again`);
    for (const pod of result.removed) consola.info(`pod ${pod} removed: it was not persistent (foreground or --ephemeral) and its units are gone`);
    for (const pod of result.kept) consola.info(`pod ${pod} not started again: its restartPolicy is not Always (it runs to completion once)`);
    for (const failure of result.failed) consola.error(`pod ${failure}`);
    if (result.restored.length === 0 && result.failed.length === 0) consola.info("every persistent pod has its units; nothing to start");
    return result.failed.length > 0 ? 1 : 0;
  } finally {
    await engine.close();
  }
}

export async function podCheckpoint(options: PodRestoreOptions): Promise<void> {
  const engine = await PodEngine.open({ scope: options.scope, stateDir: options.stateDir });
  try {
    const updated = await engine.checkpointRestarts();
    consola.info(updated.length === 0 ? "restart counts unchanged" : `restart counts recorded for ${updated.join(", ")}`);
  } finally {
    await engine.close();
  }
}
