import { describe, expect, test } from "bun:test";
import { ExitCode, VksError } from "../../internal/errors.ts";
import { ImageError } from "../../internal/image/errors.ts";
import { isDebianVersion, parseImageReference } from "../../internal/image/ref.ts";

const FIELD = "spec.containers[0].image";
const HEX = "a".repeat(64);

function rejection(ref: string): ImageError {
  try {
    parseImageReference(ref, FIELD);
  } catch (err) {
    if (err instanceof ImageError) return err;
    throw err;
  }
  throw new Error(`${JSON.stringify(ref)} was accepted`);
}

describe("package references", () => {
  test("plain names", () => {
    expect(parseImageReference("hello", FIELD)).toEqual({ kind: "package", name: "hello" });
    expect(parseImageReference("libstdc++6", FIELD)).toEqual({ kind: "package", name: "libstdc++6" });
    expect(parseImageReference("g++-12", FIELD)).toEqual({ kind: "package", name: "g++-12" });
  });
  test("pinned versions, epochs included", () => {
    expect(parseImageReference("openssh-server=1:9.2p1-2+deb12u3", FIELD)).toEqual({
      kind: "package",
      name: "openssh-server",
      version: "1:9.2p1-2+deb12u3",
    });
    expect(parseImageReference("hello=2.10-3", FIELD)).toMatchObject({ version: "2.10-3" });
    expect(parseImageReference("redis-server=5:7.0.15-1~deb12u1", FIELD)).toMatchObject({ version: "5:7.0.15-1~deb12u1" });
    expect(parseImageReference("foo=1.0", FIELD)).toMatchObject({ version: "1.0" });
  });
  test("Debian version grammar", () => {
    for (const good of ["1", "1.0", "1:2", "2.10-3", "1:9.2p1-2+deb12u3", "1.2~rc1-0.1", "0-1-2", "3.0pl1-162"]) {
      expect(isDebianVersion(good)).toBe(true);
    }
    for (const bad of ["", "a1.0", "1.0-", "1:", ":1", "1.0-a_b", "1.0 2", "1:2:3", "x:1.0", "1.0-r:1", "-1", "1..0/2"]) {
      expect(isDebianVersion(bad)).toBe(false);
    }
  });
  test("option injection and odd names are refused, naming the field", () => {
    for (const ref of ["-oAPT::Get::AllowUnauthenticated=true", "--help", "-y", "--", "-"]) {
      const err = rejection(ref);
      expect(err.reason).toBe("InvalidImageName");
      expect(err.message).toContain(FIELD);
      expect(err.message).toMatch(/starts with '-'|whitespace/);
    }
    expect(rejection("hello --allow-unauthenticated").message).toMatch(/whitespace/);
    expect(rejection("a").message).toMatch(/not a Debian package name/);
    expect(rejection("Hello").message).toMatch(/uppercase/);
    expect(rejection("hello=").message).toMatch(/followed by a version/);
    expect(rejection("hello=-oFoo").message).toMatch(/not a Debian version/);
    expect(rejection("hello=1.0;rm").message).toMatch(/not a Debian version/);
    expect(rejection("").message).toMatch(/empty/);
    expect(rejection("hello\n").message).toMatch(/whitespace/);
  });
  test("container-style tags get a hint about name=version", () => {
    const err = rejection("nginx:1.25");
    expect(err.hint).toContain("name=version");
  });
  test("errors are VksErrors with exit code invalidInput and a hint listing valid forms", () => {
    const err = rejection("--help");
    expect(err).toBeInstanceOf(VksError);
    expect(err.exitCode).toBe(ExitCode.invalidInput);
    expect(err.hint).toContain("absolute path");
    expect(err.hint).toContain("@sha256:");
  });
});

describe("repo references", () => {
  test("host/name and host:port/name=version", () => {
    expect(parseImageReference("apt.example.com/tool", FIELD)).toEqual({ kind: "repo", host: "apt.example.com", name: "tool" });
    expect(parseImageReference("127.0.0.1:8080/hello=2.10-3", FIELD)).toEqual({
      kind: "repo",
      host: "127.0.0.1:8080",
      name: "hello",
      version: "2.10-3",
    });
  });
  test("registry paths and bad hosts are refused", () => {
    expect(rejection("docker.io/library/nginx").message).toMatch(/only one '\/'/);
    expect(rejection("Apt.Example.com/tool").message).toMatch(/not a host name/);
    expect(rejection("apt.example.com/-oFoo").message).toMatch(/not a Debian package name/);
    expect(rejection("host_name/tool").message).toMatch(/not a host name/);
  });
});

describe("deb URL references", () => {
  const url = "https://deb.example.com/pool/h/hello/hello_2.10-3_amd64.deb";
  test("https with and without digest", () => {
    expect(parseImageReference(url, FIELD)).toEqual({
      kind: "deb",
      url,
      name: "hello",
      version: "2.10-3",
      architecture: "amd64",
    });
    expect(parseImageReference(`${url}@sha256:${HEX}`, FIELD)).toMatchObject({
      url,
      digest: { algorithm: "sha256", hex: HEX },
    });
  });
  test("an epoch encoded in the file name, as apt-get download writes it", () => {
    expect(parseImageReference("https://h.example/openssh-server_1%3a9.2p1-2_amd64.deb", FIELD)).toMatchObject({
      name: "openssh-server",
      version: "1:9.2p1-2",
    });
  });
  test("plain http only from the loopback host", () => {
    expect(parseImageReference("http://127.0.0.1:8000/hello_2.10-3_amd64.deb", FIELD)).toMatchObject({ kind: "deb" });
    expect(parseImageReference("http://localhost/hello_2.10-3_amd64.deb", FIELD)).toMatchObject({ kind: "deb" });
    expect(rejection("http://deb.example.com/hello_2.10-3_amd64.deb").message).toMatch(/https/);
    expect(rejection("ftp://deb.example.com/hello_2.10-3_amd64.deb").message).toMatch(/not supported/);
  });
  test("bad digests", () => {
    expect(rejection(`${url}@sha256:${"a".repeat(63)}`).message).toMatch(/bad digest/);
    expect(rejection(`${url}@sha256:${"A".repeat(64)}`).message).toMatch(/lowercase hex/);
    expect(rejection(`${url}@sha256:`).message).toMatch(/bad digest/);
    expect(rejection(`${url}@sha512:${HEX}`).message).toMatch(/not supported/);
    expect(rejection(`${url}@md5:abc`).message).toMatch(/not supported/);
  });
  test("the file name must be a Debian one; credentials and fragments are refused", () => {
    expect(rejection("https://deb.example.com/hello.deb").message).toMatch(/name_version_arch\.deb/);
    expect(rejection("https://deb.example.com/download?id=3").message).toMatch(/name_version_arch\.deb/);
    expect(rejection("https://deb.example.com/Hello_1.0_amd64.deb").message).toMatch(/uppercase/);
    expect(rejection("https://deb.example.com/hello_x1.0_amd64.deb").message).toMatch(/not a Debian version/);
    expect(rejection("https://user:pw@deb.example.com/hello_1.0_amd64.deb").message).toMatch(/credentials/);
    expect(rejection("https://deb.example.com/hello_1.0_amd64.deb#x").message).toMatch(/fragment/);
    expect(rejection("https://").message).toMatch(/not a valid URL/);
  });
});

describe("path references", () => {
  test("absolute paths", () => {
    expect(parseImageReference("/usr/bin/sleep", FIELD)).toEqual({ kind: "path", path: "/usr/bin/sleep" });
  });
  test("relative paths read as registry-like and fail as such", () => {
    expect(rejection("./bin/x").message).toContain(FIELD);
  });
});
