import { expect, test } from "bun:test";
import { parseOomKills } from "../../internal/host/kernel-oom.ts";

test("the kernel's oom-kill lines give the victim's cgroup and pid", () => {
  const dmesg = [
    "[ 9883.186625] python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
    "[ 9883.186984] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/run/vks.slice/vks-burstable.slice/vks-burstable-default_hog_f859ccac.slice,task_memcg=/run/vks.slice/vks-burstable.slice/vks-burstable-default_hog_f859ccac.slice/vks.default.hog.main.f859ccac.service,task=python3,pid=22445,uid=0",
    "[ 9883.187005] Memory cgroup out of memory: Killed process 22445 (python3) total-vm:218668kB",
  ].join("\n");
  expect(parseOomKills(dmesg)).toEqual([
    {
      uptimeSeconds: 9883.186984,
      taskMemcg: "/run/vks.slice/vks-burstable.slice/vks-burstable-default_hog_f859ccac.slice/vks.default.hog.main.f859ccac.service",
      pid: 22445,
    },
  ]);
});
