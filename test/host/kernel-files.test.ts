/** The kernel's shared text formats. */
import { expect, test } from "bun:test";
import { kilobyteField, parseFlatKeyed } from "../../internal/host/kernel-files.ts";

test("kB fields, and key-value files", () => {
  expect(kilobyteField("VmRSS:\t   2048 kB\nRssAnon:\t 1024 kB\n", "RssAnon")).toBe(1024 * 1024);
  expect(kilobyteField("Inactive(file):  100 kB\n", "Inactive(file)")).toBe(100 * 1024);
  expect(kilobyteField("Name: x\n", "VmRSS")).toBeUndefined();
  expect(parseFlatKeyed("usage_usec 1575888\nuser_usec 1347324\n")).toEqual(
    new Map([
      ["usage_usec", 1575888],
      ["user_usec", 1347324],
    ]),
  );
});
