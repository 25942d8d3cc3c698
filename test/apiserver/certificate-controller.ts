// The controllers behind the CSR API, as kube-controller-manager runs them, acting through the registry
// like any client: the signer for kubernetes.io/kubelet-serving and kube-apiserver-client-kubelet
// (issues approved requests with the cluster CA, or marks them Failed with SignerValidationFailure),
// and, only when enabled, an approver for kubelet serving requests that a node made for itself (what
// clusters deploy kubelet-csr-approver for; the real controller-manager approves no serving requests).
import type { UserInfo } from "./auth.ts";
import {
  certificateOf,
  certificateRequestKind,
  hasCondition,
  requestPemOf,
  signerNameOf,
  usagesOf,
} from "./certificate-requests.ts";
import { cloneJson, numberAt, objectAt, stringAt, arrayAt, type JsonObject } from "./json.ts";
import { CertificateRequestError, parseCertificateRequest } from "./pkcs10.ts";
import type { Registry } from "./registry.ts";
import { resourceTypeNamed, type ResourceType } from "./resources.ts";
import { builtInSigners, issueCertificate, kubeletServingSigner, signerValidationProblem } from "./signer.ts";
import { ApiError } from "./status.ts";
import type { StoredChange } from "./store.ts";
import { formatTime } from "./time.ts";

/** kube-controller-manager authenticates as this user. */
const controllerUser: UserInfo = { name: "system:kube-controller-manager", groups: ["system:authenticated"] };

export interface CertificateAuthorityMaterial {
  certificatePem: string;
  privateKeyPem: string;
}

export type ApprovalDecision = "Approved" | "Denied";

export class CertificateController {
  private readonly type: ResourceType;
  private autoApproveKubeletServing: boolean;

  constructor(
    private readonly registry: Registry,
    private readonly authority: CertificateAuthorityMaterial | undefined,
    options: { autoApproveKubeletServing: boolean },
    private readonly now: () => Date = () => new Date(),
  ) {
    const type = resourceTypeNamed("certificatesigningrequests");
    if (type === undefined) throw new Error("certificatesigningrequests is not a known resource");
    this.type = type;
    this.autoApproveKubeletServing = options.autoApproveKubeletServing;
  }

  setAutoApproveKubeletServing(enabled: boolean): void {
    this.autoApproveKubeletServing = enabled;
  }

  /** Reacts to a stored change, after the write that caused it has finished, as an informer would. */
  observe(change: StoredChange): void {
    if (change.resourceType.kind !== certificateRequestKind || change.type === "DELETED") return;
    const name = stringAt(objectAt(change.object, "metadata"), "name") ?? "";
    setImmediate(() => this.reconcile(name));
  }

  /** Adds an Approved or Denied condition through /approval, as `kubectl certificate approve|deny` does. */
  decide(name: string, decision: ApprovalDecision, user: UserInfo, reason?: string, message?: string): JsonObject {
    const current = this.registry.get(this.type, "", name);
    const kubectl = decision === "Approved" ? ["KubectlApprove", "This CSR was approved by kubectl certificate approve."] : ["KubectlDeny", "This CSR was denied by kubectl certificate deny."];
    const condition: JsonObject = { type: decision, status: "True", reason: reason ?? kubectl[0] ?? "", message: message ?? kubectl[1] ?? "", lastUpdateTime: formatTime(this.now()) };
    const updated = cloneJson(current);
    const status: JsonObject = { ...objectAt(updated, "status") };
    status["conditions"] = [...(arrayAt(status, "conditions") ?? []), condition];
    updated["status"] = status;
    return this.registry.update(this.type, "", name, updated, "approval", user).body;
  }

  private reconcile(name: string): void {
    try {
      const current = this.registry.get(this.type, "", name);
      if (this.autoApproveKubeletServing && this.shouldAutoApprove(current)) {
        this.decide(name, "Approved", controllerUser, "AutoApproved", "Auto approving self kubelet server certificate after SubjectAccessReview.");
        return;
      }
      this.sign(current);
    } catch (error) {
      // A request deleted or changed meanwhile is reconciled again on its next event.
      if (!(error instanceof ApiError)) process.stderr.write(`apiserver: certificate controller: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  }

  /** A pending kubelet-serving request from system:node:<name> for itself, that the signer would accept. */
  private shouldAutoApprove(csr: JsonObject): boolean {
    if (signerNameOf(csr) !== kubeletServingSigner || hasCondition(csr, "Approved") || hasCondition(csr, "Denied")) return false;
    const spec = objectAt(csr, "spec") ?? {};
    const groups = (arrayAt(spec, "groups") ?? []).filter((group): group is string => typeof group === "string");
    let commonName: string;
    try {
      const request = parseCertificateRequest(requestPemOf(csr));
      if (signerValidationProblem(kubeletServingSigner, request, usagesOf(csr)) !== undefined) return false;
      commonName = request.commonName;
    } catch (error) {
      if (error instanceof CertificateRequestError) return false;
      throw error;
    }
    return stringAt(spec, "username") === commonName && groups.includes("system:nodes");
  }

  private sign(csr: JsonObject): void {
    const signerName = signerNameOf(csr);
    if (this.authority === undefined || !builtInSigners.has(signerName)) return;
    if (!hasCondition(csr, "Approved") || hasCondition(csr, "Failed") || certificateOf(csr) !== "") return;
    const request = parseCertificateRequest(requestPemOf(csr));
    const updated = cloneJson(csr);
    const status: JsonObject = { ...objectAt(updated, "status") };
    const problem = signerValidationProblem(signerName, request, usagesOf(csr));
    if (problem !== undefined) {
      const failed: JsonObject = { type: "Failed", status: "True", reason: "SignerValidationFailure", message: problem, lastUpdateTime: formatTime(this.now()) };
      status["conditions"] = [...(arrayAt(status, "conditions") ?? []), failed];
    } else {
      const expirationSeconds = numberAt(objectAt(csr, "spec"), "expirationSeconds");
      const pem = issueCertificate(this.authority.certificatePem, this.authority.privateKeyPem, { request, usages: usagesOf(csr), expirationSeconds }, this.now());
      status["certificate"] = Buffer.from(pem, "utf8").toString("base64");
    }
    updated["status"] = status;
    this.registry.update(this.type, "", stringAt(objectAt(csr, "metadata"), "name") ?? "", updated, "status", controllerUser);
  }
}
