import { expect, test } from "bun:test";
import { ChunkQueue } from "../../internal/exec/chunk-queue.ts";

test("chunks pushed before and while reading arrive in order; end ends the iteration", async () => {
  const queue = new ChunkQueue();
  queue.push(new Uint8Array([1]));
  const read = (async () => {
    const seen: number[] = [];
    for await (const chunk of queue) seen.push(...chunk);
    return seen;
  })();
  await Bun.sleep(1);
  queue.push(new Uint8Array([2, 3]));
  queue.push(new Uint8Array([]));
  queue.end();
  queue.push(new Uint8Array([4]));
  expect(await read).toEqual([1, 2, 3]);
  expect(queue.isEnded).toBe(true);
});
