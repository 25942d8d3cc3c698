import { describe, expect, test } from "bun:test";
import { trackingCgroupDirectory } from "../../internal/exec/cgroup.ts";
import { SANDBOX_MOUNTINFO } from "../systemd/mountinfo.ts";

const unit = "/system.slice/vks.default.web.nginx.1234.service";

describe("trackingCgroupDirectory", () => {
  test("unified hierarchy at /sys/fs/cgroup", () => {
    const mountInfo = [
      "22 1 0:21 / / rw,relatime - ext4 /dev/vda1 rw",
      "30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot",
    ].join("\n");
    expect(trackingCgroupDirectory(`0::${unit}\n`, mountInfo)).toBe(`/sys/fs/cgroup${unit}`);
  });

  test("hybrid: the unified hierarchy, not name=systemd, under mounts stacked on one another", () => {
    // test/sandbox.sh: a second tmpfs over /sys/fs/cgroup hides the first one's cgroup mounts.
    const membership = `9:name=systemd:/app.slice/x.service\n4:memory:/\n0::/app.slice/x.service\n`;
    expect(trackingCgroupDirectory(membership, SANDBOX_MOUNTINFO)).toBe("/sys/fs/cgroup/unified/app.slice/x.service");
  });

  test("legacy: name=systemd when there is no cgroup2", () => {
    const mountInfo = [
      "22 1 0:21 / / rw - ext4 /dev/vda1 rw",
      "25 22 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw",
      "26 25 0:23 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd",
      "27 25 0:24 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct",
    ].join("\n");
    expect(trackingCgroupDirectory(`2:cpu,cpuacct:/\n1:name=systemd:${unit}\n`, mountInfo)).toBe(`/sys/fs/cgroup/systemd${unit}`);
  });

  test("a mount of a sub-tree and escaped mount points", () => {
    const mountInfo = ["1 0 0:1 / / rw - ext4 /dev/vda rw", "2 1 0:2 /system.slice /mnt/cg\\040v2 rw - cgroup2 cgroup2 rw"].join("\n");
    expect(trackingCgroupDirectory(`0::${unit}\n`, mountInfo)).toBe("/mnt/cg v2/vks.default.web.nginx.1234.service");
    expect(trackingCgroupDirectory("0::/user.slice/x.service\n", mountInfo)).toBeUndefined();
    expect(trackingCgroupDirectory("0::/x\n", "")).toBeUndefined();
  });
});
