/**
 * Validation of the env sources beyond literals and fieldRef (validate.ts checks those): `envFrom`,
 * `valueFrom.configMapKeyRef`, `secretKeyRef` and `resourceFieldRef`, with the API server's rules, so a
 * manifest is refused with every problem's field path before anything is created.
 */
import { divisorProblem, isResourceField, RESOURCE_FIELDS } from "./resource-field.ts";

type Fields = Record<string, unknown>;
type Report = (path: string, message: string) => void;

function isFields(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** IsConfigMapKey, the rule for data keys. */
const DATA_KEY = /^[-._a-zA-Z0-9]+$/;

function checkName(value: unknown, path: string, report: Report): void {
  if (typeof value !== "string" || value === "") report(path, "required");
}

function checkOptional(value: unknown, path: string, report: Report): void {
  if (value !== undefined && typeof value !== "boolean") report(path, "must be true or false");
}

function checkKeyRef(ref: unknown, path: string, report: Report): void {
  if (!isFields(ref)) {
    report(path, "must be a mapping with name and key");
    return;
  }
  checkName(ref.name, `${path}.name`, report);
  if (typeof ref.key !== "string" || ref.key === "") report(`${path}.key`, "required");
  else if (!DATA_KEY.test(ref.key)) report(`${path}.key`, "a valid config key must consist of alphanumeric characters, '-', '_' or '.'");
  checkOptional(ref.optional, `${path}.optional`, report);
}

function checkResourceFieldRef(ref: unknown, path: string, containerNames: ReadonlySet<string>, report: Report): void {
  if (!isFields(ref)) {
    report(path, "must be a mapping with resource");
    return;
  }
  const resource = ref.resource;
  if (typeof resource !== "string" || resource === "") {
    report(`${path}.resource`, "required");
  } else if (!isResourceField(resource)) {
    report(
      `${path}.resource`,
      resource.includes("hugepages-")
        ? "not supported: vks has no hugepages to report"
        : `Unsupported value: ${JSON.stringify(resource)}: supported values: ${RESOURCE_FIELDS.map((field) => `"${field}"`).join(", ")}`,
    );
  } else if (ref.divisor !== undefined) {
    const problem = divisorProblem(resource, String(ref.divisor));
    if (problem !== undefined) report(`${path}.divisor`, problem);
  }
  const containerName = ref.containerName;
  if (containerName !== undefined && containerName !== "" && (typeof containerName !== "string" || !containerNames.has(containerName))) {
    report(`${path}.containerName`, `must name a container of the pod (${[...containerNames].join(", ")})`);
  }
}

/** Checks one container's `envFrom` and the non-fieldRef `valueFrom` sources of its `env`. */
export function checkEnvSources(container: Fields, path: string, containerNames: ReadonlySet<string>, report: Report): void {
  const envFrom = container.envFrom;
  if (envFrom !== undefined && !Array.isArray(envFrom)) report(`${path}.envFrom`, "must be a list");
  if (Array.isArray(envFrom)) {
    envFrom.forEach((source, index) => {
      const sourcePath = `${path}.envFrom[${index}]`;
      if (!isFields(source)) {
        report(sourcePath, "must be a mapping with configMapRef or secretRef");
        return;
      }
      const refs = ["configMapRef", "secretRef"].filter((key) => source[key] !== undefined);
      if (refs.length !== 1) {
        report(sourcePath, "must give exactly one of configMapRef, secretRef");
        return;
      }
      const [field = ""] = refs;
      const ref = source[field];
      if (!isFields(ref)) {
        report(`${sourcePath}.${field}`, "must be a mapping with name");
      } else {
        checkName(ref.name, `${sourcePath}.${field}.name`, report);
        checkOptional(ref.optional, `${sourcePath}.${field}.optional`, report);
      }
      const prefix = source.prefix;
      if (prefix !== undefined && (typeof prefix !== "string" || (prefix !== "" && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(prefix)))) {
        // A prefix systemd cannot start a name with would make every key of the source skipped.
        report(`${sourcePath}.prefix`, "must be letters, digits and '_', not starting with a digit (systemd passes no other variable names)");
      }
    });
  }
  const env = container.env;
  if (!Array.isArray(env)) return;
  env.forEach((entry, index) => {
    if (!isFields(entry) || !isFields(entry.valueFrom)) return;
    const from = entry.valueFrom;
    const fromPath = `${path}.env[${index}].valueFrom`;
    const sources = Object.keys(from).filter((key) => from[key] !== undefined);
    // validate.ts reports any count but one, and checks fieldRef itself.
    if (sources.length !== 1) return;
    const [source] = sources;
    switch (source) {
      case "configMapKeyRef":
      case "secretKeyRef":
        checkKeyRef(from[source], `${fromPath}.${source}`, report);
        return;
      case "resourceFieldRef":
        checkResourceFieldRef(from.resourceFieldRef, `${fromPath}.resourceFieldRef`, containerNames, report);
        return;
      case "fieldRef":
        return;
      default:
        report(`${fromPath}.${source}`, "not supported by vks: use value, fieldRef, resourceFieldRef, configMapKeyRef or secretKeyRef");
    }
  });
}
