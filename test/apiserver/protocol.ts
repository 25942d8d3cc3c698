// What main.ts and client.ts agree on: the readiness line the CLI prints and the admin endpoint's routes.
import type { BearerToken, DenyRule } from "./auth.ts";
import type { KeyPairFiles } from "./certs.ts";
import type { AllowRule } from "./rbac.ts";
import type { OutageMode } from "./server.ts";

/** Printed as one JSON line on stdout once both ports listen. */
export interface ReadyLine {
  event: "ready";
  pid: number;
  url: string;
  port: number;
  adminUrl: string;
  adminPort: number;
  dir: string;
  nodeName: string;
  caCertPath: string;
  /** The API server's client certificate for kubelets: CN=kube-apiserver-kubelet-client, O=system:masters. */
  kubeletClient: KeyPairFiles;
  kubeconfigs: {
    /** CN=system:node:<nodeName>, O=system:nodes. */
    node: string;
    /** CN=vks-test-admin, O=system:masters. */
    admin: string;
    /** One per configured bearer token, by user name. */
    tokens: Record<string, string>;
  };
}

export interface AvailabilityRequest {
  available: boolean;
  mode?: OutageMode;
}

export interface CompactRequest {
  expireWatches?: boolean;
}

export interface ServerState {
  revision: number;
  available: boolean;
  openWatches: number;
}

export type DenyRulesRequest = DenyRule[];
export type AllowRulesRequest = AllowRule[];
export type TokensRequest = BearerToken[];

export interface AddressTypesRequest {
  types: string[];
}

export interface CertificateApprovalRequest {
  name: string;
  decision: "Approved" | "Denied";
  reason?: string;
  message?: string;
}

/**
 * Admin routes (plain HTTP on 127.0.0.1). Besides these, every Kubernetes API path is served on the
 * admin port too, as a cluster admin that authorization and outages never affect.
 */
export const adminRoutes = {
  state: "/admin/state",
  compact: "/admin/compact",
  availability: "/admin/availability",
  bookmarks: "/admin/bookmarks",
  closeWatches: "/admin/close-watches",
  requests: "/admin/requests",
  objects: "/admin/objects",
  denyRules: "/admin/deny-rules",
  tokens: "/admin/tokens",
  historyLimit: "/admin/history-limit",
  nodeAuthorization: "/admin/node-authorization",
  allowRules: "/admin/allow-rules",
  kubeletPreferredAddressTypes: "/admin/kubelet-preferred-address-types",
  autoApproveKubeletServing: "/admin/auto-approve-kubelet-serving",
  certificateApproval: "/admin/certificate-approval",
} as const;
