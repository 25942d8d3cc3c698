/** Finding the cgroup hierarchies in mountinfo, and a cgroup's directory under them. */
import { describe, expect, test } from "bun:test";
import { cgroupDirectory, parseMountInfo } from "../../internal/systemd/cgroup-mounts.ts";
import { SANDBOX_HOST_MOUNTS, SANDBOX_MOUNTINFO } from "./mountinfo.ts";

const HYBRID_MOUNTINFO = [
  "25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw",
  "26 25 0:24 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755",
  "27 26 0:25 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate",
  "28 26 0:26 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd",
  "31 26 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory",
  "32 26 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct",
].join("\n");

describe("cgroup mounts", () => {
  test("a hybrid host: v2 under unified, name=systemd and memory in v1", () => {
    const mounts = parseMountInfo(HYBRID_MOUNTINFO);
    expect(mounts).toEqual({
      unified: { mountPoint: "/sys/fs/cgroup/unified", root: "/" },
      systemd: { mountPoint: "/sys/fs/cgroup/systemd", root: "/" },
      memory: { mountPoint: "/sys/fs/cgroup/memory", root: "/" },
    });
    expect(cgroupDirectory(mounts.unified, "/app.slice/x.service")).toBe("/sys/fs/cgroup/unified/app.slice/x.service");
    expect(cgroupDirectory(mounts.unified, "")).toBeUndefined();
  });

  test("a unified host, and a mount whose root is a sub-cgroup", () => {
    const mounts = parseMountInfo("30 1 0:26 /ns /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate");
    expect(mounts.unified).toEqual({ mountPoint: "/sys/fs/cgroup", root: "/ns" });
    expect(cgroupDirectory(mounts.unified, "/ns/app.slice/x.service")).toBe("/sys/fs/cgroup/app.slice/x.service");
    expect(cgroupDirectory(mounts.unified, "/elsewhere/x.service")).toBeUndefined();
  });

  test("test/sandbox.sh: the host's mounts are shadowed by a tmpfs and mounted again inside the cgroup namespace", () => {
    expect(parseMountInfo(SANDBOX_MOUNTINFO)).toEqual({
      systemd: { mountPoint: "/sys/fs/cgroup/systemd", root: "/" },
      unified: { mountPoint: "/sys/fs/cgroup/unified", root: "/" },
    });
    // Without the second tmpfs the namespace's own view would be the only one, and it lies outside: none.
    expect(parseMountInfo(SANDBOX_HOST_MOUNTS.join("\n"))).toEqual({});
  });

  test("escaped mount points are decoded", () => {
    const mounts = parseMountInfo("30 1 0:26 / /mnt/with\\040space rw - cgroup2 cgroup2 rw");
    expect(mounts.unified?.mountPoint).toBe("/mnt/with space");
  });
});
