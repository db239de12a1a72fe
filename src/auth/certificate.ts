import type { ContextValues } from '@connectrpc/connect';
import { peerIdentityKey } from './peer.ts';
import type { Principal } from '../rpc/principal.ts';

/** A URI subject alternative name naming the agent's site, e.g. `urn:powerplane:site:site-a`. */
const SITE_URI = 'urn:powerplane:site:';

/**
 * The principal of a client certificate verified against `POWERPLANE_TLS_CLIENT_CA`: an
 * edge agent of one site, allowed `telemetry:write` for that site only. The site is the
 * certificate's `urn:powerplane:site:<site>` URI name when it has one, else its subject
 * common name. A certificate with neither (or several site URIs) is no principal.
 */
export function certificatePrincipal(values: ContextValues): Principal | undefined {
  const peer = values.get(peerIdentityKey);
  if (!peer) return undefined;
  const fromUri = peer.uris.filter((u) => u.startsWith(SITE_URI)).map((u) => u.slice(SITE_URI.length));
  if (fromUri.length > 1) return undefined;
  const site = fromUri[0] ?? peer.subjectCommonName;
  if (!site) return undefined;
  return {
    id: `cert:${peer.subjectCommonName ?? site}`,
    kind: 'certificate',
    scopes: new Set(['telemetry:write']),
    sites: new Set([site]),
  };
}
