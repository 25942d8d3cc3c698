/**
 * The kubelet API's webhook authentication and authorization: TokenReview and SubjectAccessReview sent to
 * the API server with the node's own credentials (the bootstrap system:node role allows both).
 */
import type { AccessVerdict, KubeletUser, NodeAccess, ReviewClient, TokenVerdict } from "../kubelet/auth.ts";
import type { KubeClient } from "./client.ts";

export class ApiServerReviews implements ReviewClient {
  constructor(private readonly client: KubeClient) {}

  async reviewToken(token: string): Promise<TokenVerdict> {
    const review = await this.client.createTokenReview({ apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } });
    const status = review.status;
    const user = status?.user;
    if (status?.authenticated !== true || user?.username === undefined) {
      return { authenticated: false, error: status?.error ?? "token not authenticated" };
    }
    return {
      authenticated: true,
      user: {
        name: user.username,
        groups: user.groups ?? [],
        ...(user.uid === undefined ? {} : { uid: user.uid }),
        ...(user.extra === undefined ? {} : { extra: user.extra }),
      },
    };
  }

  async reviewAccess(user: KubeletUser, access: NodeAccess): Promise<AccessVerdict> {
    const review = await this.client.createSubjectAccessReview({
      apiVersion: "authorization.k8s.io/v1",
      kind: "SubjectAccessReview",
      spec: {
        user: user.name,
        groups: user.groups,
        ...(user.uid === undefined ? {} : { uid: user.uid }),
        ...(user.extra === undefined ? {} : { extra: user.extra }),
        resourceAttributes: { verb: access.verb, group: "", version: "v1", resource: "nodes", subresource: access.subresource, name: access.nodeName },
      },
    });
    return { allowed: review.status?.allowed === true, reason: review.status?.reason ?? "" };
  }
}
