import type http from 'node:http';
import type http2 from 'node:http2';
import type { PeerCertificate } from 'node:tls';
import { createContextKey, createContextValues, type ContextValues } from '@connectrpc/connect';

/**
 * The identity in a client certificate that the listener verified against
 * `POWERPLANE_TLS_CLIENT_CA` (mutual TLS). Authentication turns it into a principal; it
 * is never set for a cleartext connection, a client without a certificate, or a
 * certificate that did not verify.
 */
export interface PeerIdentity {
  /** The subject's common name; undefined when it has none, or several (ambiguous). */
  readonly subjectCommonName: string | undefined;
  /** `DNS:` subject alternative names. */
  readonly dnsNames: readonly string[];
  /** `URI:` subject alternative names (e.g. SPIFFE ids). */
  readonly uris: readonly string[];
  /** SHA-256 fingerprint of the certificate, colon-separated hex as Node prints it. */
  readonly fingerprint256: string;
}

/** Where the server leaves the caller's verified client certificate, for authentication. */
export const peerIdentityKey = createContextKey<PeerIdentity | undefined>(undefined, { description: 'the verified client certificate' });

/** A request of either HTTP version, as connect-node hands it to `contextValues`. */
export type PeerRequest = http.IncomingMessage | http2.Http2ServerRequest;

/**
 * connect-node's `contextValues` option: the context of every call starts with the peer
 * identity of its connection. Read per call rather than cached, because it is a few
 * microseconds and a cache keyed by connection would have to follow TLS renegotiation.
 */
export function peerContextValues(req: PeerRequest): ContextValues {
  return createContextValues().set(peerIdentityKey, peerIdentityOf(req));
}

/**
 * The verified client certificate of the connection `req` came on, or undefined. For
 * HTTP/2, `req.socket` is Node's proxy that forwards these reads to the TLS socket.
 */
export function peerIdentityOf(req: PeerRequest): PeerIdentity | undefined {
  const socket = req.socket as Partial<{ authorized: boolean; getPeerCertificate(): PeerCertificate | null }> | null;
  if (!socket || socket.authorized !== true || typeof socket.getPeerCertificate !== 'function') return undefined;
  const cert = socket.getPeerCertificate();
  if (!cert || !cert.fingerprint256) return undefined;
  const cn = cert.subject?.CN as string | string[] | undefined;
  const names = parseSubjectAltName(cert.subjectaltname ?? '');
  return {
    subjectCommonName: typeof cn === 'string' ? cn : undefined,
    dnsNames: names.filter((n) => n.type === 'DNS').map((n) => n.value),
    uris: names.filter((n) => n.type === 'URI').map((n) => n.value),
    fingerprint256: cert.fingerprint256,
  };
}

/**
 * Splits Node's `subjectaltname` text (`DNS:a, URI:spiffe://x/y, IP Address:1.2.3.4`).
 * Since Node 17 a value with a comma, quote or other special character is printed as a
 * JSON string, so a name cannot smuggle a second entry past this split.
 */
export function parseSubjectAltName(text: string): { type: string; value: string }[] {
  const entries: { type: string; value: string }[] = [];
  const pattern = /([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/gy;
  let match: RegExpExecArray | null;
  while (pattern.lastIndex < text.length && (match = pattern.exec(text)) !== null) {
    const raw = match[2]!;
    entries.push({ type: match[1]!, value: raw.startsWith('"') ? (JSON.parse(raw) as string) : raw });
  }
  return entries;
}
