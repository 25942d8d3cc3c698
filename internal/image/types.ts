import type { ExecCommand, ServiceType } from "../systemd/types.ts";

export type PullPolicy = "Always" | "IfNotPresent" | "Never";

/**
 * What an "image" gives a container once it is on the host: like an OCI image config, an entrypoint and
 * default arguments (ENTRYPOINT/CMD) plus how the program expects to run. For a Debian package these come
 * from the package's own service unit when it has one.
 */
export interface ResolvedImage {
  /** The image reference as written in the manifest. */
  reference: string;
  /** Absolute path of argv[0] first. Empty when the image names no program (the pod must give `command`). */
  entrypoint: string[];
  cmd: string[];
  type?: ServiceType;
  user?: string;
  group?: string;
  workingDirectory?: string;
  environment: string[];
  environmentFiles: { path: string; optional: boolean }[];
  runtimeDirectory: string[];
  execStartPre: ExecCommand[];
  /** e.g. "dpkg:hello=2.10-3" or "path:/bin/sleep", shown as the container's imageID. */
  imageID: string;
  /** Why entrypoint is empty (the pod must give `command`), worded for a user; absent when there is one. */
  explanation?: string;
  /** Parts of the package's unit vks could not carry over (e.g. a `+` prefix), worded for a user. */
  warnings?: string[];
}

/** Kubelet waiting reasons an image problem maps to. */
export type ImageFailureReason = "InvalidImageName" | "ErrImagePull" | "ErrImageNeverPull" | "ImagePullBackOff";
