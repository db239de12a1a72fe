import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../logger.ts';
import { SCOPES } from '../rpc/principal.ts';
import type { TokenStore } from './tokens.ts';

/**
 * First start: when authentication is on and no valid token can manage tokens, creates an
 * admin token (every scope, every site), writes it to `file` (mode 0600) and logs where it
 * is — never the token itself. Later starts find the admin and do nothing. With several
 * replicas starting at once each may create one; every one is valid and listed.
 *
 * It never expires, unlike every token made through the API: it is the operator's key on
 * the server's own machine (readable only by the server's user), and an expiry would lock
 * the operator out of token management on some unattended day. Revoke it once other admin
 * tokens exist; a start with no valid admin token left creates a new one.
 *
 * Returns the file written, or undefined when nothing was created.
 */
export async function ensureAdminToken(tokens: TokenStore, file: string | undefined, log: Logger): Promise<string | undefined> {
  if (await tokens.hasAdmin()) return undefined;
  if (file === undefined) {
    log.warn('no admin token exists and the data directory is in memory: create tokens with POWERPLANE_AUTH=off or a JWT');
    return undefined;
  }
  const { secret, info } = await tokens.create({ name: 'admin (created on first start)', scopes: [...SCOPES] }, 'powerplane serve');
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${secret}\n`, { mode: 0o600 });
  log.warn({ file, tokenId: info.id }, `created the admin token and wrote it to ${file} (keep it secret; the CLI reads it from there)`);
  return file;
}
