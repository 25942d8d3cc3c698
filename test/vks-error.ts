// What a synchronous call threw, for tests that check a VksError's message, hint and exit code.
import { VksError } from "../internal/errors.ts";

export function vksErrorOf(run: () => unknown): VksError {
  try {
    run();
  } catch (err) {
    if (err instanceof VksError) return err;
    throw err;
  }
  throw new Error("expected a VksError");
}
