import { describe, expect, test } from "bun:test";
import { expandReferences, lookupFrom } from "../../internal/pod/expand.ts";

const lookup = lookupFrom([
  ["VAR_A", "A"],
  ["VAR_B", "B"],
  ["EMPTY", ""],
  ["NESTED", "$(VAR_A)"],
]);

describe("expandReferences", () => {
  const cases: [input: string, expected: string][] = [
    ["", ""],
    ["plain", "plain"],
    ["$(VAR_A)", "A"],
    ["___$(VAR_B)___", "___B___"],
    ["$(VAR_A)-$(VAR_B)", "A-B"],
    ["$(EMPTY)", ""],
    ["$(UNKNOWN)", "$(UNKNOWN)"],
    ["$(VAR_A)$(UNKNOWN)$(VAR_B)", "A$(UNKNOWN)B"],
    ["$$(VAR_A)", "$(VAR_A)"],
    ["$$$(VAR_A)", "$A"],
    ["$$$$(VAR_A)", "$$(VAR_A)"],
    ["$$", "$"],
    ["$$$", "$$"],
    ["cost: $$5", "cost: $5"],
    ["$", "$"],
    ["end$", "end$"],
    ["$HOME", "$HOME"],
    ["${VAR_A}", "${VAR_A}"],
    ["$1$(VAR_A)", "$1A"],
    ["$(VAR_A", "$(VAR_A"],
    ["$(VAR_A $$", "$(VAR_A $"],
    ["$()", "$()"],
    ["$(VAR_A)(x)", "A(x)"],
    ["$((VAR_A))", "$((VAR_A))"],
    // One pass only: a value that looks like a reference is inserted as it is.
    ["$(NESTED)", "$(VAR_A)"],
    ["héllo $(VAR_A) ✓", "héllo A ✓"],
  ];
  for (const [input, expected] of cases) {
    test(JSON.stringify(input), () => expect(expandReferences(input, lookup)).toBe(expected));
  }
});

describe("lookupFrom", () => {
  test("the last duplicate wins", () => {
    expect(lookupFrom([["X", "1"], ["X", "2"]])("X")).toBe("2");
  });
  test("unknown names are undefined", () => {
    expect(lookupFrom([])("X")).toBeUndefined();
  });
});
