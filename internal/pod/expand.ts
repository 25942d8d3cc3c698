/**
 * Kubernetes `$(VAR)` references, as the kubelet expands them in `command`, `args` and `env[].value`.
 *
 * The rules (from the API reference and the kubelet's behaviour):
 * - `$(NAME)` is replaced by NAME's value when the lookup knows NAME, and left exactly as written when
 *   it does not: a reference to an undefined variable is not an error.
 * - `$$` always stands for one literal `$`, so `$$(NAME)` yields the text `$(NAME)` and is never expanded.
 * - A `$` before anything else (`$HOME`, `$1`) is ordinary text; shell syntax means nothing here.
 * - `$(` without a closing `)` is ordinary text.
 * - Expansion is one pass: a value that itself contains `$(X)` is inserted as it is, not expanded again.
 */

/** Returns a variable's value, or undefined when the variable is not defined. */
export type VariableLookup = (name: string) => string | undefined;

const DOLLAR = "$";
const OPEN = "(";
const CLOSE = ")";

export function expandReferences(input: string, lookup: VariableLookup): string {
  let expanded = "";
  let cursor = 0;
  while (cursor < input.length) {
    const dollar = input.indexOf(DOLLAR, cursor);
    // A `$` as the very last character can start nothing, so it is copied with the rest.
    if (dollar === -1 || dollar === input.length - 1) break;
    expanded += input.slice(cursor, dollar);
    const next = input[dollar + 1];
    if (next === DOLLAR) {
      expanded += DOLLAR;
      cursor = dollar + 2;
    } else if (next === OPEN) {
      const close = input.indexOf(CLOSE, dollar + 2);
      if (close === -1) {
        // Unterminated: keep `$(` and keep scanning after it, so a later `$$` still collapses.
        expanded += DOLLAR + OPEN;
        cursor = dollar + 2;
      } else {
        const name = input.slice(dollar + 2, close);
        expanded += lookup(name) ?? input.slice(dollar, close + 1);
        cursor = close + 1;
      }
    } else {
      // `$x`: both characters are plain text.
      expanded += DOLLAR + (next ?? "");
      cursor = dollar + 2;
    }
  }
  return expanded + input.slice(cursor);
}

/** A lookup over name/value pairs; with duplicate names the last one wins, as in the kubelet's map. */
export function lookupFrom(variables: Iterable<readonly [string, string]>): VariableLookup {
  const values = new Map(variables);
  return (name) => values.get(name);
}
