/**
 * /proc/self/mountinfo as test/sandbox.sh leaves it on a hybrid host, shared by the tests of the cgroup
 * mount parser and of `vks pod exec`'s cgroup lookup, which both have to see through it.
 */

/**
 * The host's mounts as seen from inside the sandbox's new cgroup namespace: the hierarchies' roots lie
 * above the namespace ("/.."), so none of them can be mapped to the namespace's cgroup paths.
 */
export const SANDBOX_HOST_MOUNTS = [
  "45 44 254:0 / / rw,relatime - ext4 /dev/vda rw",
  "48 45 0:21 / /sys rw,relatime - sysfs sysfs rw",
  "49 48 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
  "53 49 0:31 /../.. /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
  "58 49 0:36 /.. /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd",
  "59 49 0:37 /.. /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
];

/** The sandbox's own tmpfs over /sys/fs/cgroup (hiding the host's), with name=systemd and cgroup2 mounted again inside. */
export const SANDBOX_OWN_MOUNTS = [
  "66 49 0:40 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw",
  "67 66 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd",
  "68 66 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
];

export const SANDBOX_MOUNTINFO = [...SANDBOX_HOST_MOUNTS, ...SANDBOX_OWN_MOUNTS].join("\n");
