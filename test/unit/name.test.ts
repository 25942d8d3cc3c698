import { describe, expect, test } from "bun:test";
import { VksError } from "../../internal/errors.ts";
import {
  MAX_UNIT_NAME_BYTES,
  VKS_UNIT_GLOB,
  isUnitOfPod,
  isVksUnitName,
  parseUnitName,
  shortUid,
  unitNameFor,
  type UnitIdentity,
} from "../../internal/unit/name.ts";
import { seededRandom } from "../seeded-random.ts";

const UID = "0f8e4c1a-6b2d-4e59-9a7c-3d1f2b8e6a40";
const SYSTEMD_UNIT_CHARS = /^[A-Za-z0-9:_.\-\\@]+$/;

function byteLength(name: string): number {
  return Buffer.byteLength(name, "utf8");
}

function label(length: number, fill = "a"): string {
  return fill.repeat(length);
}

/** A valid subdomain of exactly `length` characters made of 63-character labels. */
function subdomain(length: number, fill = "p"): string {
  const labels: string[] = [];
  let remaining = length;
  while (remaining > 0) {
    // A label must not be followed by a lone dot, so never leave exactly one character for the next label.
    const take = Math.min(63, remaining === 64 ? 62 : remaining);
    labels.push(fill.repeat(take));
    remaining -= take + 1;
  }
  return labels.join(".");
}

function expectVksError(run: () => unknown, mentioning: string): void {
  let caught: unknown;
  try {
    run();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(VksError);
  expect((caught as VksError).message).toContain(mentioning);
}

describe("unitNameFor", () => {
  test("follows the scheme with the full uid", () => {
    expect(unitNameFor({ namespace: "default", pod: "web", container: "nginx", uid: UID })).toBe(
      `vks.default.web.nginx.${UID}.service`,
    );
  });

  test("lowercases the uid", () => {
    const name = unitNameFor({ namespace: "default", pod: "web", container: "nginx", uid: UID.toUpperCase() });
    expect(name).toBe(`vks.default.web.nginx.${UID}.service`);
  });

  test("keeps dots in pod names", () => {
    expect(unitNameFor({ namespace: "ns", pod: "a.b.c", container: "c", uid: UID })).toBe(
      `vks.ns.a.b.c.c.${UID}.service`,
    );
  });

  test("matches the glob", () => {
    const name = unitNameFor({ namespace: "ns", pod: "p", container: "c", uid: UID });
    const globAsRegExp = new RegExp("^" + VKS_UNIT_GLOB.replace(/\./g, "\\.").replace("*", ".*") + "$");
    expect(globAsRegExp.test(name)).toBe(true);
  });

  const invalid: [string, Partial<UnitIdentity>, string][] = [
    ["empty namespace", { namespace: "" }, "namespace"],
    ["dotted namespace", { namespace: "a.b" }, "namespace"],
    ["uppercase namespace", { namespace: "Default" }, "namespace"],
    ["64-character namespace", { namespace: label(64) }, "namespace"],
    ["namespace ending in '-'", { namespace: "ns-" }, "namespace"],
    ["empty pod", { pod: "" }, "pod name"],
    ["pod with empty label", { pod: "a..b" }, "pod name"],
    ["pod with underscore", { pod: "a_b" }, "pod name"],
    ["pod starting with '.'", { pod: ".a" }, "pod name"],
    ["254-character pod", { pod: subdomain(254) }, "pod name"],
    ["dotted container", { container: "c.d" }, "container name"],
    ["container with '/'", { container: "c/d" }, "container name"],
    ["empty uid", { uid: "" }, "pod uid"],
    ["uid with a dot", { uid: "abc.def" }, "pod uid"],
    ["uid with '/'", { uid: "../etc" }, "pod uid"],
    ["uid with a space", { uid: "abc def" }, "pod uid"],
    ["65-character uid", { uid: label(65, "0") }, "pod uid"],
  ];
  for (const [what, override, part] of invalid) {
    test(`rejects ${what}, naming the ${part}`, () => {
      const id = { namespace: "ns", pod: "p", container: "c", uid: UID, ...override };
      expectVksError(() => unitNameFor(id), part);
    });
  }
});

describe("parseUnitName", () => {
  test("round-trips a plain name", () => {
    const name = unitNameFor({ namespace: "kube-system", pod: "coredns-5d78c9869d-abcde", container: "coredns", uid: UID });
    expect(parseUnitName(name)).toEqual({
      namespace: "kube-system",
      pod: "coredns-5d78c9869d-abcde",
      podShortened: false,
      container: "coredns",
      uid: UID,
    });
  });

  test("never confuses pod a with pod a.b", () => {
    const podA = unitNameFor({ namespace: "ns", pod: "a", container: "b", uid: UID });
    const podAB = unitNameFor({ namespace: "ns", pod: "a.b", container: "b", uid: UID });
    expect(podA).not.toBe(podAB);
    expect(parseUnitName(podA)?.pod).toBe("a");
    expect(parseUnitName(podAB)?.pod).toBe("a.b");
    expect(parseUnitName(podAB)?.container).toBe("b");
    expect(isUnitOfPod(podAB, "ns", "a")).toBe(false);
    expect(isUnitOfPod(podAB, "ns", "a.b")).toBe(true);
    expect(isUnitOfPod(podA, "ns", "a")).toBe(true);
    expect(isUnitOfPod(podA, "ns", "a.b")).toBe(false);
    expect(isUnitOfPod(podA, "other", "a")).toBe(false);
  });

  const notVks = [
    "",
    "sshd.service",
    "vks.service",
    "vks..service",
    "vks.ns.p.c.service", // no uid field
    "vks.ns.p.c.uid.socket",
    "vks.ns.p.c.uid.service.d",
    "vks.NS.p.c.uid.service",
    "vks.ns.p.C.uid.service",
    "vks.ns.p.c.UID.service",
    "vks.ns.P.c.uid.service",
    "vks.ns..c.uid.service",
    "vks.ns.p..uid.service",
    "vks.ns.p.c..service",
    "vks.ns.p_x.c.uid.service", // '_' without a hash is not a shortened pod
    "vks.ns._0123456789.c.uid.service", // shortened pod with an empty prefix
    "vks.ns.p-_0123456789.c.uid.service",
    "vks.ns.p_0123456789abcdef.c.uid.service",
    "vks.ns.p_012345678g.c.uid.service",
    "vks.ns.p.c.uid@1.service",
    "vks.ns.p.c.u:id.service",
    "vks.ns.pöd.c.uid.service",
    "xvks.ns.p.c.uid.service",
    `vks.ns.${subdomain(200)}.c.${"0".repeat(41)}.service`, // 256 bytes
  ];
  for (const name of notVks) {
    test(`returns undefined for ${JSON.stringify(name.length > 60 ? name.slice(0, 60) + "…" : name)}`, () => {
      expect(parseUnitName(name)).toBeUndefined();
      expect(isVksUnitName(name)).toBe(false);
    });
  }
});

describe("the 255-byte limit", () => {
  // Everything but the pod: "vks.ns." + ".c." + uid (36) + ".service" = 7 + 3 + 36 + 8 = 54 bytes.
  const fixed = byteLength(`vks.ns..c.${UID}.service`);

  test("a name of exactly 255 bytes is kept whole", () => {
    const pod = subdomain(MAX_UNIT_NAME_BYTES - fixed);
    const name = unitNameFor({ namespace: "ns", pod, container: "c", uid: UID });
    expect(byteLength(name)).toBe(MAX_UNIT_NAME_BYTES);
    expect(parseUnitName(name)).toEqual({ namespace: "ns", pod, podShortened: false, container: "c", uid: UID });
  });

  test("one byte more shortens the pod part and stays within the limit", () => {
    const pod = subdomain(MAX_UNIT_NAME_BYTES - fixed + 1);
    const name = unitNameFor({ namespace: "ns", pod, container: "c", uid: UID });
    expect(byteLength(name)).toBeLessThanOrEqual(MAX_UNIT_NAME_BYTES);
    const parsed = parseUnitName(name);
    expect(parsed?.podShortened).toBe(true);
    expect(parsed?.namespace).toBe("ns");
    expect(parsed?.container).toBe("c");
    expect(parsed?.uid).toBe(UID);
    expect(parsed?.pod).toMatch(/^p+(\.p+)*_[0-9a-f]{10}$/);
    expect(isUnitOfPod(name, "ns", pod)).toBe(true);
  });

  test("pods sharing a long prefix stay distinct when shortened", () => {
    const common = subdomain(240);
    const names = new Set(
      ["x", "y", "z", "xx"].map((tail) => unitNameFor({ namespace: "ns", pod: `${common}.${tail}`, container: "c", uid: UID })),
    );
    expect(names.size).toBe(4);
    for (const name of names) {
      expect(parseUnitName(name)?.podShortened).toBe(true);
      expect(byteLength(name)).toBeLessThanOrEqual(MAX_UNIT_NAME_BYTES);
    }
    const first = unitNameFor({ namespace: "ns", pod: `${common}.x`, container: "c", uid: UID });
    expect(isUnitOfPod(first, "ns", `${common}.x`)).toBe(true);
    expect(isUnitOfPod(first, "ns", `${common}.y`)).toBe(false);
  });

  test("every part at its maximum still leaves a readable pod prefix", () => {
    const id = { namespace: label(63, "n"), pod: subdomain(253), container: label(63, "c"), uid: label(64, "0") };
    const name = unitNameFor(id);
    expect(byteLength(name)).toBeLessThanOrEqual(MAX_UNIT_NAME_BYTES);
    const parsed = parseUnitName(name);
    expect(parsed).toMatchObject({ namespace: id.namespace, container: id.container, uid: id.uid, podShortened: true });
    expect(parsed?.pod.length).toBeGreaterThan(30);
  });

  test("a shortened prefix never ends in '.' or '-'", () => {
    // Place a label boundary exactly where the cut would fall.
    for (let cut = 1; cut < 60; cut++) {
      const pod = `${"p".repeat(cut)}.${"q".repeat(62)}.${"r".repeat(62)}.${"s".repeat(62)}`.slice(0, 253);
      const name = unitNameFor({ namespace: "ns", pod, container: "c", uid: UID });
      const parsed = parseUnitName(name);
      expect(parsed).toBeDefined();
      expect(parsed?.pod).not.toMatch(/[.-]_/);
    }
  });

  test("a real pod name that looks like a hash suffix is never read as shortened", () => {
    const name = unitNameFor({ namespace: "ns", pod: "web-0123456789", container: "c", uid: UID });
    expect(parseUnitName(name)?.podShortened).toBe(false);
  });
});

describe("shortUid", () => {
  test("keeps the first 8 characters", () => {
    expect(shortUid(UID)).toBe("0f8e4c1a");
    expect(shortUid("abc")).toBe("abc");
  });
});


describe("fuzz", () => {
  const SEED = 0x5eed;
  const random = seededRandom(SEED);
  const pick = (chars: string): string => chars[Math.floor(random() * chars.length)] ?? "a";
  const intBetween = (low: number, high: number): number => low + Math.floor(random() * (high - low + 1));
  const ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789";

  function randomLabel(maxLength: number): string {
    const length = intBetween(1, maxLength);
    let out = pick(ALNUM);
    for (let i = 1; i < length - 1; i++) out += pick(ALNUM + "--");
    if (length > 1) out += pick(ALNUM);
    return out;
  }

  function randomSubdomain(): string {
    // Favour long names so that shortening is exercised often.
    const target = random() < 0.5 ? intBetween(1, 40) : intBetween(150, 253);
    let out = randomLabel(Math.min(63, target));
    while (out.length < target - 1) {
      const next = randomLabel(Math.min(63, target - out.length - 1));
      out += "." + next;
    }
    return out;
  }

  function randomUid(): string {
    if (random() < 0.8) {
      return [8, 4, 4, 4, 12]
        .map((length) => Array.from({ length }, () => pick("0123456789abcdefABCDEF")).join(""))
        .join("-");
    }
    let out = "";
    for (let i = intBetween(1, 64); i > 0; i--) out += pick(ALNUM + "-ABCXYZ");
    return out;
  }

  test(`valid identities round-trip (seed ${SEED})`, () => {
    const seen = new Map<string, string>();
    let shortened = 0;
    for (let i = 0; i < 4000; i++) {
      const id = { namespace: randomLabel(63), pod: randomSubdomain(), container: randomLabel(63), uid: randomUid() };
      const name = unitNameFor(id);
      const context = JSON.stringify(id);
      expect(byteLength(name), context).toBeLessThanOrEqual(MAX_UNIT_NAME_BYTES);
      expect(SYSTEMD_UNIT_CHARS.test(name), context).toBe(true);
      const parsed = parseUnitName(name);
      expect(parsed, context).toBeDefined();
      expect(parsed?.namespace, context).toBe(id.namespace);
      expect(parsed?.container, context).toBe(id.container);
      expect(parsed?.uid, context).toBe(id.uid.toLowerCase());
      if (parsed?.podShortened) {
        shortened++;
        expect(id.pod.startsWith(parsed.pod.slice(0, parsed.pod.lastIndexOf("_"))), context).toBe(true);
      } else {
        expect(parsed?.pod, context).toBe(id.pod);
      }
      expect(isUnitOfPod(name, id.namespace, id.pod), context).toBe(true);
      const key = `${id.namespace}/${id.pod}/${id.container}/${id.uid.toLowerCase()}`;
      const earlier = seen.get(name);
      if (earlier !== undefined) expect(earlier, `two identities share ${name}`).toBe(key);
      seen.set(name, key);
    }
    // Guards the generator: both encodings must actually have been exercised.
    expect(shortened).toBeGreaterThan(500);
    expect(shortened).toBeLessThan(3500);
  });

  test(`garbage never makes parse throw (seed ${SEED})`, () => {
    const alphabet = "vks.service" + ALNUM + "._-@:\\/ \u0000é€😀ABC";
    for (let i = 0; i < 4000; i++) {
      let garbage = random() < 0.5 ? "vks." : "";
      for (let n = intBetween(0, 300); n > 0; n--) garbage += pick(alphabet);
      if (random() < 0.5) garbage += ".service";
      expect(() => parseUnitName(garbage)).not.toThrow();
      const parsed = parseUnitName(garbage);
      // Whatever parse accepts must be a name systemd accepts too.
      if (parsed !== undefined) {
        expect(byteLength(garbage)).toBeLessThanOrEqual(MAX_UNIT_NAME_BYTES);
        expect(SYSTEMD_UNIT_CHARS.test(garbage)).toBe(true);
      }
    }
  });
});
