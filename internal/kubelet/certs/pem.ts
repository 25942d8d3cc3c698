/** PEM (RFC 7468): DER in base64 between BEGIN/END lines, the form certificate and key files take. */

export interface PemBlock {
  label: string;
  der: Buffer;
}

export function encodePem(label: string, der: Uint8Array): string {
  const base64 = Buffer.from(der).toString("base64");
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** Every well-formed block in `text`, in order; text between blocks (comments, openssl's dumps) is skipped. */
export function decodePem(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  const pattern = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;
  for (const match of text.matchAll(pattern)) {
    const body = (match[2] ?? "").replace(/\s+/g, "");
    // Headers (RFC 1421 Proc-Type, used by encrypted legacy keys) make the body invalid base64 on purpose.
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) continue;
    blocks.push({ label: match[1] ?? "", der: Buffer.from(body, "base64") });
  }
  return blocks;
}
