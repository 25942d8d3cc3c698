// Every command refuses a flag it does not declare (exit 2, a did-you-mean), before it touches systemd,
// the API server or any file, as kubectl and systemctl do.
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { refuseUnknownFlags } from "../../internal/cli/unknown-flags.ts";
import { ExitCode, VksError } from "../../internal/errors.ts";
import { VKS_BINARY } from "../e2e/helpers.ts";

async function run(args: string[]): Promise<{ exitCode: number; output: string }> {
  const child = Bun.spawn([VKS_BINARY, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, NO_COLOR: "1", VKS_STATE_DIR: "/nonexistent/vks-flags-test" } });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { exitCode, output: stdout + stderr };
}

const commands = [["pod", "up", "x.yaml"], ["pod", "down", "x"], ["pod", "ls"], ["pod", "logs", "x"], ["pod", "exec", "x"], ["units", "ls"], ["units", "gc"], ["serve"]];

describe.skipIf(!existsSync(VKS_BINARY))("unknown flags, through the binary", () => {
  for (const command of commands) {
    test(`vks ${command.join(" ")} --bogus-flag: exit 2 naming the flag and the command`, async () => {
      const { exitCode, output } = await run([...command, "--bogus-flag"]);
      expect(exitCode).toBe(ExitCode.usage);
      expect(output).toContain(`unknown flag --bogus-flag for vks ${command.slice(0, command[0] === "serve" ? 1 : 2).join(" ")}`);
    });
  }

  test("a misspelt flag gets a did-you-mean", async () => {
    const serve = await run(["serve", "--kubconfig", "F"]);
    expect(serve.exitCode).toBe(ExitCode.usage);
    expect(serve.output).toContain("did you mean --kubeconfig?");
    expect((await run(["pod", "up", "--detatch", "x.yaml"])).output).toContain("did you mean --detach?");
  });

  test("a flag before a subcommand belongs to its parent, which has none", async () => {
    const { exitCode, output } = await run(["--user", "pod", "ls"]);
    expect(exitCode).toBe(ExitCode.usage);
    expect(output).toContain("unknown flag --user for vks");
  });

  test("words after -- belong to the command vks runs", async () => {
    // Refused for the missing pod (not a flag): the check never reads past --.
    const { exitCode, output } = await run(["pod", "exec", "x", "--user", "--", "ls", "--bogus"]);
    expect(output).not.toContain("unknown flag");
    expect(exitCode).not.toBe(ExitCode.usage);
  });
});

describe("refuseUnknownFlags", () => {
  const args = {
    name: { type: "positional" as const },
    namespace: { type: "string" as const, alias: "n" },
    follow: { type: "boolean" as const, alias: "f" },
    stdin: { type: "boolean" as const, alias: "i" },
    tty: { type: "boolean" as const, alias: "t" },
  };
  const refused = (words: string[]): string | undefined => {
    try {
      refuseUnknownFlags(words, args, "vks x");
      return undefined;
    } catch (err) {
      if (err instanceof VksError && err.exitCode === ExitCode.usage) return err.message;
      throw err;
    }
  };

  test("declared flags, aliases, --no- for booleans, --k=v, bundled booleans and values that look like flags", () => {
    for (const words of [["web", "--namespace", "a"], ["-n", "a", "web"], ["--namespace=a"], ["--no-follow"], ["-it"], ["-f"], ["-n", "-weird-value"], ["-"], ["--help"]]) {
      expect(refused(words)).toBeUndefined();
    }
  });

  test("anything else is refused, by its own name", () => {
    expect(refused(["--namespce", "a"])).toBe("unknown flag --namespce for vks x; did you mean --namespace?");
    expect(refused(["-ix"])).toBe("unknown flag -x for vks x");
    expect(refused(["--no-namespace"])).toContain("unknown flag --no-namespace");
    expect(refused(["--zzzzzzzz"])).toBe("unknown flag --zzzzzzzz for vks x");
  });
});
