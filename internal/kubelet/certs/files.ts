/** Writing key material so that a crash leaves the old file or the new one, never half of one. */
import { randomBytes } from "node:crypto";
import { open, rename, unlink } from "node:fs/promises";

/** Writes `data` to a temporary file with `mode` (set at creation, so a key is never readable by others), fsyncs it, renames it over `path`. */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const temporary = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    const file = await open(temporary, "wx", mode);
    try {
      await file.writeFile(data);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, path);
  } catch (err) {
    await unlink(temporary).catch(() => undefined);
    throw err;
  }
}
