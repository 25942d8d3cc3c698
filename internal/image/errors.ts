import { ExitCode, type ExitCodeValue, VksError } from "../errors.ts";
import type { ImageFailureReason } from "./types.ts";

/**
 * An image that could not be resolved. `reason` is the kubelet's waiting reason for it, so the engine can
 * report the container exactly as a kubelet would (ErrImagePull, then ImagePullBackOff on retries).
 */
export class ImageError extends VksError {
  override readonly name = "ImageError";
  constructor(
    readonly reason: ImageFailureReason,
    message: string,
    options: { hint?: string; exitCode?: ExitCodeValue; cause?: unknown; retryAfterMs?: number } = {},
  ) {
    super(message, { ...options, exitCode: options.exitCode ?? defaultExitCode(reason) });
  }
}

function defaultExitCode(reason: ImageFailureReason): ExitCodeValue {
  switch (reason) {
    case "InvalidImageName":
      return ExitCode.invalidInput;
    case "ErrImageNeverPull":
      return ExitCode.notFound;
    case "ErrImagePull":
    case "ImagePullBackOff":
      return ExitCode.unavailable;
  }
}
