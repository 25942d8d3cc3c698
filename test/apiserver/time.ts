// Timestamps in the two wire formats Kubernetes uses: metav1.Time (RFC 3339, whole seconds) and
// metav1.MicroTime, which the real server parses with a fixed six-digit fraction and rejects otherwise.

/** metav1.Time as the server writes it: `2006-01-02T15:04:05Z`. */
export function formatTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

export const microTimeLayout = "2006-01-02T15:04:05.000000Z07:00";

interface LayoutElement {
  layout: string;
  pattern: RegExp;
}

// Go's time.Parse walks the layout element by element; failing elements name the unparsed rest.
const microTimeElements: readonly LayoutElement[] = [
  { layout: "2006", pattern: /^\d{4}/ },
  { layout: "-", pattern: /^-/ },
  { layout: "01", pattern: /^\d{2}/ },
  { layout: "-", pattern: /^-/ },
  { layout: "02", pattern: /^\d{2}/ },
  { layout: "T", pattern: /^T/ },
  { layout: "15", pattern: /^\d{2}/ },
  { layout: ":", pattern: /^:/ },
  { layout: "04", pattern: /^\d{2}/ },
  { layout: ":", pattern: /^:/ },
  { layout: "05", pattern: /^\d{2}/ },
  { layout: ".000000", pattern: /^\.\d{6}(?!\d)/ },
  { layout: "Z07:00", pattern: /^(Z|[+-]\d{2}:\d{2})/ },
];

/** Why `text` is not a MicroTime, in the words of Go's time.Parse, or undefined if it is one. */
export function microTimeProblem(text: string): string | undefined {
  let rest = text;
  for (const element of microTimeElements) {
    const match = element.pattern.exec(rest);
    if (match === null) {
      return `parsing time ${JSON.stringify(text)} as ${JSON.stringify(microTimeLayout)}: cannot parse ${JSON.stringify(rest)} as ${JSON.stringify(element.layout)}`;
    }
    rest = rest.slice(match[0].length);
  }
  if (rest !== "") return `parsing time ${JSON.stringify(text)}: extra text: ${JSON.stringify(rest)}`;
  if (Number.isNaN(Date.parse(text))) return `parsing time ${JSON.stringify(text)}: day out of range`;
  return undefined;
}
