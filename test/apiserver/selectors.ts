// Label and field selectors with the grammar and matching rules of apimachinery's labels/fields packages.
import { badRequest } from "./status.ts";

type LabelOperator = "=" | "!=" | "in" | "notin" | "exists" | "!" | "gt" | "lt";

interface LabelRequirement {
  key: string;
  operator: LabelOperator;
  values: string[];
}

export interface LabelSelector {
  requirements: readonly LabelRequirement[];
}

export interface FieldRequirement {
  field: string;
  negated: boolean;
  value: string;
}

export interface FieldSelector {
  requirements: readonly FieldRequirement[];
}

const labelValuePattern = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const labelNamePattern = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const subdomainPattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Why a label key is unacceptable, or undefined when it is fine; shared with metadata validation. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf("/");
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !subdomainPattern.test(prefix))) {
    return "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
  }
  if (name.length === 0 || name.length > 63 || !labelNamePattern.test(name)) {
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
  }
  return undefined;
}

export function labelValueProblem(value: string): string | undefined {
  if (value.length > 63) return "must be no more than 63 characters";
  if (!labelValuePattern.test(value)) {
    return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
  }
  return undefined;
}

type LabelToken =
  | { kind: "identifier"; text: string }
  | { kind: "operator"; text: "=" | "==" | "!=" | "!" | "(" | ")" | "," | ">" | "<" };

function tokenizeLabelSelector(text: string): LabelToken[] {
  const tokens: LabelToken[] = [];
  let index = 0;
  while (index < text.length) {
    const char = text[index] ?? "";
    if (/\s/.test(char)) {
      index += 1;
      continue;
    }
    const pair = text.slice(index, index + 2);
    if (pair === "==" || pair === "!=") {
      tokens.push({ kind: "operator", text: pair });
      index += 2;
      continue;
    }
    if (char === "=" || char === "!" || char === "(" || char === ")" || char === "," || char === ">" || char === "<") {
      tokens.push({ kind: "operator", text: char });
      index += 1;
      continue;
    }
    let end = index;
    while (end < text.length && !/[\s=!(),<>]/.test(text[end] ?? "")) end += 1;
    tokens.push({ kind: "identifier", text: text.slice(index, end) });
    index = end;
  }
  return tokens;
}

function describeToken(token: LabelToken | undefined): string {
  return token === undefined ? "''" : `'${token.text}'`;
}

export function parseLabelSelector(text: string): LabelSelector {
  const tokens = tokenizeLabelSelector(text);
  const requirements: LabelRequirement[] = [];
  let position = 0;
  const fail = (expected: string): never => {
    throw badRequest(`unable to parse requirement: found ${describeToken(tokens[position])}, expected: ${expected}`);
  };
  const takeIdentifier = (): string => {
    const token = tokens[position];
    if (token?.kind !== "identifier") return fail("identifier");
    position += 1;
    return token.text;
  };
  while (position < tokens.length) {
    let requirement: LabelRequirement;
    const first = tokens[position];
    if (first?.kind === "operator" && first.text === "!") {
      position += 1;
      requirement = { key: takeIdentifier(), operator: "!", values: [] };
    } else {
      const key = takeIdentifier();
      const next = tokens[position];
      if (next === undefined || (next.kind === "operator" && next.text === ",")) {
        requirement = { key, operator: "exists", values: [] };
      } else if (next.kind === "operator" && (next.text === "=" || next.text === "==" || next.text === "!=")) {
        position += 1;
        const valueToken = tokens[position];
        // An empty value (`a=`) is legal and means the label is present with an empty value.
        const value = valueToken?.kind === "identifier" ? valueToken.text : "";
        if (valueToken?.kind === "identifier") position += 1;
        requirement = { key, operator: next.text === "!=" ? "!=" : "=", values: [value] };
      } else if (next.kind === "operator" && (next.text === ">" || next.text === "<")) {
        position += 1;
        const value = takeIdentifier();
        if (!/^-?\d+$/.test(value)) throw badRequest(`unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer`);
        requirement = { key, operator: next.text === ">" ? "gt" : "lt", values: [value] };
      } else if (next.kind === "identifier" && (next.text === "in" || next.text === "notin")) {
        position += 1;
        const open = tokens[position];
        if (open?.kind !== "operator" || open.text !== "(") return fail("'('");
        position += 1;
        const values: string[] = [];
        for (;;) {
          const token = tokens[position];
          if (token?.kind === "identifier") {
            values.push(token.text);
            position += 1;
          } else if (token?.kind === "operator" && token.text === ",") {
            position += 1;
          } else if (token?.kind === "operator" && token.text === ")") {
            position += 1;
            break;
          } else {
            return fail("',' or ')'");
          }
        }
        requirement = { key, operator: next.text, values };
      } else {
        return fail("=, !=, ==, in, notin");
      }
    }
    const keyProblem = labelKeyProblem(requirement.key);
    if (keyProblem !== undefined) throw badRequest(`unable to parse requirement: key: Invalid value: "${requirement.key}": ${keyProblem}`);
    for (const value of requirement.values) {
      const valueProblem = labelValueProblem(value);
      if (valueProblem !== undefined) throw badRequest(`unable to parse requirement: values[0][${requirement.key}]: Invalid value: "${value}": ${valueProblem}`);
    }
    requirements.push(requirement);
    const separator = tokens[position];
    if (separator === undefined) break;
    if (separator.kind !== "operator" || separator.text !== ",") return fail("','");
    position += 1;
    if (position >= tokens.length) return fail("identifier");
  }
  return { requirements };
}

export function labelsMatch(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  return selector.requirements.every(({ key, operator, values }) => {
    const present = Object.hasOwn(labels, key);
    const value = labels[key];
    switch (operator) {
      case "=":
        return present && value === values[0];
      case "!=":
        return !present || value !== values[0];
      case "in":
        return present && value !== undefined && values.includes(value);
      case "notin":
        return !present || value === undefined || !values.includes(value);
      case "exists":
        return present;
      case "!":
        return !present;
      case "gt":
      case "lt": {
        if (value === undefined || !/^-?\d+$/.test(value)) return false;
        const actual = Number(value);
        const bound = Number(values[0]);
        return operator === "gt" ? actual > bound : actual < bound;
      }
    }
  });
}

/** Splits on `separator` unless escaped with a backslash, keeping escapes for the next stage. */
function splitUnescaped(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = "";
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index] ?? "";
    if (char === "\\" && index + 1 < text.length) {
      current += char + (text[index + 1] ?? "");
      index += 1;
    } else if (char === separator) {
      parts.push(current);
      current = "";
    } else {
      current += char;
    }
  }
  parts.push(current);
  return parts;
}

function unescapeFieldValue(text: string): string {
  let result = "";
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index] ?? "";
    if (char === "\\") {
      const escaped = text[index + 1];
      if (escaped !== "\\" && escaped !== "," && escaped !== "=") {
        throw badRequest(`invalid field selector: invalid escape sequence: \\${escaped ?? ""}`);
      }
      result += escaped;
      index += 1;
    } else if (char === "," || char === "=") {
      throw badRequest(`invalid field selector: unescaped ${char} in value: ${text}`);
    } else {
      result += char;
    }
  }
  return result;
}

export function parseFieldSelector(text: string): FieldSelector {
  const requirements: FieldRequirement[] = [];
  for (const term of splitUnescaped(text, ",")) {
    if (term === "") continue;
    // The leftmost operator wins, trying `!=` and `==` before `=` at each position, like fields.splitTerm.
    let parsed: FieldRequirement | undefined;
    for (let index = 0; index < term.length && parsed === undefined; index += 1) {
      if (term[index - 1] === "\\") continue;
      for (const operator of ["!=", "==", "="] as const) {
        if (term.startsWith(operator, index)) {
          parsed = {
            field: term.slice(0, index),
            negated: operator === "!=",
            value: unescapeFieldValue(term.slice(index + operator.length)),
          };
          break;
        }
      }
    }
    if (parsed === undefined) throw badRequest(`invalid selector: '${text}'; can't understand '${term}'`);
    requirements.push(parsed);
  }
  return { requirements };
}

export function fieldsMatch(selector: FieldSelector, fieldValue: (field: string) => string): boolean {
  return selector.requirements.every(({ field, negated, value }) => (fieldValue(field) === value) !== negated);
}
