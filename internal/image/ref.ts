/**
 * Image references: what a container's `image` field may name. Pure: no file or network access.
 *
 * Every accepted reference is safe to hand to apt-get, dpkg and fetch as one argv element after `--`:
 * package names and versions are held to Debian's grammar (which has no room for `-` first, whitespace or
 * shell metacharacters), so a manifest can never smuggle an option (`-oAPT::…`) into a package manager.
 */
import { ImageError } from "./errors.ts";

export interface Sha256Digest {
  algorithm: "sha256";
  /** 64 lowercase hex digits. */
  hex: string;
}

/** A package from the host's configured APT sources, optionally pinned (`openssh-server=1:9.2p1-2`). */
export interface PackageReference {
  kind: "package";
  name: string;
  version?: string;
}

/**
 * A .deb file fetched over https (plain http only from the loopback host, see LOOPBACK_HOSTS). Name,
 * version and architecture come from the file name (`name_version_arch.deb`, as Debian's pool and
 * `apt-get download` name files) and are checked against the file's own control data once downloaded.
 */
export interface DebReference {
  kind: "deb";
  url: string;
  name: string;
  /** As in the file name: Debian's pool omits the epoch, `apt-get download` encodes it as `%3a`. */
  version: string;
  architecture: string;
  digest?: Sha256Digest;
}

/** An executable already on the host. */
export interface PathReference {
  kind: "path";
  path: string;
}

/** `host/name[=version]`: the package comes only from the APT source configured for `host`. */
export interface RepoReference {
  kind: "repo";
  /** As written, including a `:port` if any; it is the key into the configured APT sources. */
  host: string;
  name: string;
  version?: string;
}

export type ImageReference = PackageReference | DebReference | PathReference | RepoReference;

/** Hosts from which a .deb may be fetched over plain http: nothing on the way can tamper with the file. */
export const LOOPBACK_HOSTS: readonly string[] = ["127.0.0.1", "localhost", "[::1]"];

export const VALID_IMAGE_FORMS =
  "an image is one of: a Debian package (`hello`, `openssh-server=1:9.2p1-2+deb12u3`); " +
  "an APT source host and a package (`apt.example.com/tool`, with `--apt-source apt.example.com=DEB_LINE`); " +
  "a .deb URL (`https://host/path/name_version_arch.deb@sha256:<64 hex digits>`); " +
  "or the absolute path of an executable (`/usr/bin/sleep`)";

/** Policy §5.6.7: lowercase letters, digits, `+ - .`; at least two characters; alphanumeric first. */
const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]+$/;
const EPOCH_AND_REST = /^(?:([0-9]+):)?(.*)$/;
/** Policy §5.6.12. Hyphens belong to upstream_version only when a revision follows, which the split ensures. */
const UPSTREAM_VERSION = /^[0-9][A-Za-z0-9.+~-]*$/;
const DEBIAN_REVISION = /^[A-Za-z0-9.+~]+$/;
const ARCHITECTURE = /^[a-z0-9][a-z0-9-]*$/;
const DNS_HOST = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** Anything apt, a shell or a terminal could treat specially; Debian's grammars allow none of it anyway. */
const WHITESPACE_OR_CONTROL = /[\s\p{Cc}]/u;
/** Generous: real references are far shorter, and an absurd one is more likely a mistake than a name. */
const MAX_REFERENCE_LENGTH = 4096;
const MAX_EPOCH_DIGITS = 9;

export function isDebianPackageName(name: string): boolean {
  return PACKAGE_NAME.test(name);
}

/** `[epoch:]upstream_version[-debian_revision]`, upstream starting with a digit as dpkg requires. */
export function isDebianVersion(version: string): boolean {
  const match = EPOCH_AND_REST.exec(version);
  if (match === null) return false;
  const epoch = match[1];
  const rest = match[2] ?? "";
  if (epoch !== undefined && epoch.length > MAX_EPOCH_DIGITS) return false;
  const hyphen = rest.lastIndexOf("-");
  const upstream = hyphen < 0 ? rest : rest.slice(0, hyphen);
  const revision = hyphen < 0 ? undefined : rest.slice(hyphen + 1);
  if (!UPSTREAM_VERSION.test(upstream)) return false;
  return revision === undefined || DEBIAN_REVISION.test(revision);
}

/** Drops the `epoch:` of a version: file names carry versions without it. */
export function versionWithoutEpoch(version: string): string {
  return version.replace(/^[0-9]+:/, "");
}

/**
 * Parses a container's image field. Throws ImageError (reason InvalidImageName, exit code invalidInput)
 * naming `fieldPath` and showing the valid forms.
 */
export function parseImageReference(ref: string, fieldPath: string): ImageReference {
  const fail: Fail = (problem, hint = VALID_IMAGE_FORMS) => {
    throw new ImageError("InvalidImageName", `${fieldPath}: invalid image ${JSON.stringify(ref)}: ${problem}`, { hint });
  };

  if (ref.length === 0) fail("it is empty");
  if (ref.length > MAX_REFERENCE_LENGTH) fail(`it is longer than ${MAX_REFERENCE_LENGTH} characters`);
  if (WHITESPACE_OR_CONTROL.test(ref)) fail("it contains whitespace or control characters");
  if (ref.startsWith("-")) {
    fail("it starts with '-', which apt-get and dpkg would read as an option");
  }
  if (ref.startsWith("/")) return { kind: "path", path: ref };
  if (ref.includes("://")) return parseDebUrl(ref, fail);

  const slash = ref.indexOf("/");
  if (slash >= 0) {
    const host = ref.slice(0, slash);
    const rest = ref.slice(slash + 1);
    if (rest.includes("/")) {
      fail(
        "only one '/' may follow the host: vks images are Debian packages, not container registry paths",
      );
    }
    if (!DNS_HOST.test(host)) {
      fail(`${JSON.stringify(host)} is not a host name (lowercase DNS name, optionally with :port)`);
    }
    const { name, version } = parsePackageSpec(rest, fail);
    return version === undefined ? { kind: "repo", host, name } : { kind: "repo", host, name, version };
  }

  const { name, version } = parsePackageSpec(ref, fail);
  return version === undefined ? { kind: "package", name } : { kind: "package", name, version };
}

type Fail = (problem: string, hint?: string) => never;

function parsePackageSpec(spec: string, fail: Fail): { name: string; version?: string } {
  const equals = spec.indexOf("=");
  const name = equals < 0 ? spec : spec.slice(0, equals);
  const version = equals < 0 ? undefined : spec.slice(equals + 1);

  if (version === undefined && name.includes(":")) {
    fail(
      `${JSON.stringify(name)} looks like a container image tag`,
      "vks images are Debian packages: pin a version with `name=version` (e.g. `openssh-server=1:9.2p1-2`), not `name:tag`",
    );
  }
  checkPackageName(name, fail);
  if (version !== undefined) {
    if (version.length === 0) fail("'=' must be followed by a version");
    if (!isDebianVersion(version)) {
      fail(
        `${JSON.stringify(version)} is not a Debian version ([epoch:]upstream[-revision], upstream starting with a digit; ` +
          "letters, digits and . + ~ only, plus '-' before the revision)",
      );
    }
  }
  return version === undefined ? { name } : { name, version };
}

function checkPackageName(name: string, fail: Fail): void {
  if (isDebianPackageName(name)) return;
  if (name.length === 0) fail("the package name is empty");
  if (name !== name.toLowerCase() && isDebianPackageName(name.toLowerCase())) {
    fail(`${JSON.stringify(name)} has uppercase letters; Debian package names are lowercase`);
  }
  fail(
    `${JSON.stringify(name)} is not a Debian package name (at least 2 characters: lowercase letters, digits, '+', '-', '.', ` +
      "starting with a letter or digit)",
  );
}

function parseDebUrl(ref: string, fail: Fail): DebReference {
  const { url: urlText, digest } = splitDigest(ref, fail);
  let url: URL;
  try {
    url = new URL(urlText);
  } catch {
    return fail(`${JSON.stringify(urlText)} is not a valid URL`);
  }
  if (url.protocol === "http:") {
    if (!LOOPBACK_HOSTS.includes(url.hostname)) {
      fail("plain http:// is only accepted from 127.0.0.1 or localhost; use https://");
    }
  } else if (url.protocol !== "https:") {
    fail(`URL scheme ${JSON.stringify(url.protocol.slice(0, -1))} is not supported; use https://`);
  }
  if (url.username !== "" || url.password !== "") {
    fail("credentials in the URL are not supported: they would show in status, events and logs");
  }
  if (url.hash !== "") fail("the URL must not have a #fragment");

  const encodedFileName = url.pathname.slice(url.pathname.lastIndexOf("/") + 1);
  let fileName: string;
  try {
    fileName = decodeURIComponent(encodedFileName);
  } catch {
    return fail(`the file name ${JSON.stringify(encodedFileName)} is not valid percent-encoding`);
  }
  const parts = /^([^_]+)_([^_]+)_([^_]+)\.deb$/.exec(fileName);
  if (parts === null) {
    return fail(
      `the URL must end in a Debian file name \`name_version_arch.deb\`, not ${JSON.stringify(fileName)}`,
    );
  }
  const [, name = "", version = "", architecture = ""] = parts;
  checkPackageName(name, fail);
  if (!isDebianVersion(version)) fail(`${JSON.stringify(version)} in the file name is not a Debian version`);
  if (!ARCHITECTURE.test(architecture)) {
    fail(`${JSON.stringify(architecture)} in the file name is not a Debian architecture`);
  }
  const deb: DebReference = { kind: "deb", url: url.href, name, version, architecture };
  if (digest !== undefined) deb.digest = digest;
  return deb;
}

/** `URL@sha256:HEX`: the digest is whatever follows the last '@' when it holds no '/' and has a ':'. */
function splitDigest(ref: string, fail: Fail): { url: string; digest?: Sha256Digest } {
  const at = ref.lastIndexOf("@");
  const suffix = at < 0 ? "" : ref.slice(at + 1);
  if (at < 0 || suffix.includes("/") || !suffix.includes(":")) return { url: ref };
  const colon = suffix.indexOf(":");
  const algorithm = suffix.slice(0, colon);
  const hex = suffix.slice(colon + 1);
  if (algorithm !== "sha256") {
    fail(`digest algorithm ${JSON.stringify(algorithm)} is not supported; use @sha256:<64 hex digits>`);
  }
  if (!SHA256_HEX.test(hex)) {
    fail(
      `bad digest ${JSON.stringify(suffix)}: sha256 takes exactly 64 lowercase hex digits (\`sha256sum FILE\` prints them)`,
    );
  }
  return { url: ref.slice(0, at), digest: { algorithm: "sha256", hex } };
}
