import type { ConnectNodeAdapterOptions } from '@connectrpc/connect-node';

type NodeHandler = NonNullable<ConnectNodeAdapterOptions['fallback']>;

/**
 * The content security policy of every response. The operator console loads its modules
 * and style from this server (`script-src 'self'`, no inline script or style; its charts
 * are SVG elements styled by classes) and talks only to it (`connect-src 'self'`); nothing
 * may frame any response (`frame-ancestors 'none'`), and a form may not post anywhere
 * (`form-action 'none'`: the page's token form is read by its script). For the API's own
 * answers (JSON, protobuf, text) it forbids everything.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers every HTTP response carries: the page, `/healthz`, `/metrics`, unknown paths and RPCs. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  // Browsers must not guess a type other than the one sent (a JSON error rendered as HTML).
  'x-content-type-options': 'nosniff',
  // For browsers without `frame-ancestors`.
  'x-frame-options': 'DENY',
  // No address of this server (host, port, path) reaches another site in a Referer header.
  'referrer-policy': 'no-referrer',
};

/** `handler` with {@link SECURITY_HEADERS} set on each response before it runs. */
export function withSecurityHeaders(handler: NodeHandler): NodeHandler {
  return (req, res) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    handler(req, res);
  };
}
