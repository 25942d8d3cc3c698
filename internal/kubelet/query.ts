/**
 * Query parameters of the kubelet API, read strictly: an unknown or malformed parameter is a 400 that
 * names it, never silently ignored (a misspelt `tailLine=5` must not stream a whole log).
 */

/** A request the kubelet refuses before doing anything: status and the plain-text message it sends. */
export class RequestError extends Error {
  override readonly name = "RequestError";
  constructor(
    readonly status: 400 | 404 | 405 | 409 | 500 | 503,
    message: string,
  ) {
    super(message);
  }
}

export class Query {
  constructor(
    private readonly params: URLSearchParams,
    allowed: readonly string[],
  ) {
    const unknown = [...new Set(params.keys())].filter((key) => !allowed.includes(key));
    if (unknown.length > 0) {
      const known = allowed.length === 0 ? "this endpoint takes none" : `known: ${allowed.join(", ")}`;
      throw new RequestError(400, `unknown query parameter${unknown.length > 1 ? "s" : ""} ${unknown.map((key) => `"${key}"`).join(", ")} (${known})`);
    }
  }

  private single(name: string): string | undefined {
    const values = this.params.getAll(name);
    if (values.length > 1) throw new RequestError(400, `query parameter "${name}" given ${values.length} times; give it once`);
    return values[0];
  }

  all(name: string): string[] {
    return this.params.getAll(name);
  }

  /** Go's strconv.ParseBool spellings, which is what the kubelet and the API server accept. */
  bool(name: string): boolean {
    const value = this.single(name);
    if (value === undefined) return false;
    if (["1", "t", "T", "TRUE", "true", "True"].includes(value)) return true;
    if (["0", "f", "F", "FALSE", "false", "False", ""].includes(value)) return false;
    throw new RequestError(400, `query parameter "${name}": "${value}" is not a boolean (true or false)`);
  }

  /** A whole number ≥ `minimum`, or undefined when absent. */
  integer(name: string, minimum: number): number | undefined {
    const value = this.single(name);
    if (value === undefined) return undefined;
    if (!/^-?\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new RequestError(400, `query parameter "${name}": "${value}" is not an integer`);
    const number = Number(value);
    if (number < minimum) throw new RequestError(400, `query parameter "${name}": must be at least ${minimum}, got ${number}`);
    return number;
  }

  /** An RFC 3339 time, or undefined when absent. */
  time(name: string): Date | undefined {
    const value = this.single(name);
    if (value === undefined) return undefined;
    const match = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.exec(value);
    const date = match === null ? undefined : new Date(value);
    if (date === undefined || Number.isNaN(date.getTime())) {
      throw new RequestError(400, `query parameter "${name}": "${value}" is not an RFC 3339 time (e.g. 2024-05-01T12:00:00Z)`);
    }
    return date;
  }
}
