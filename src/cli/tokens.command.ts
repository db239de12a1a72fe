import { timestampDate, timestampFromMs } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { TokenService, type TokenInfo } from '../../gen/powerplane/v1/auth_pb.ts';
import { SCOPES } from '../rpc/principal.ts';
import { DEFAULT_TOKEN_LIFETIME_DAYS, MAX_TOKEN_LIFETIME_DAYS } from '../auth/tokens.ts';
import { CLIENT_FLAGS, CLIENT_FLAGS_HELP, clientTransport } from './client-transport.ts';
import { parseFlags } from './config-flags.ts';
import { UsageError } from './usage.ts';

export const TOKENS_HELP = `Usage: powerplane tokens <create|list|revoke> [flags]

Manages static API tokens through a running control plane (needs the tokens:admin scope;
on the server's machine the admin token written on first start is used by default).

  powerplane tokens create --name N --scope S [--scope S …] [--site SITE …] [--expires-days D]
      prints the token once (it is stored only as a hash); an agent's token should name
      its site and the scope telemetry:write. Every token expires, after D days
      (default ${DEFAULT_TOKEN_LIFETIME_DAYS}, at most ${MAX_TOKEN_LIFETIME_DAYS}): create its successor before then and
      revoke it. Only the admin token serve writes on its first start never expires.
  powerplane tokens list [--all] [--json]      --all includes revoked tokens; a line is
      id, prefix, state, expiry, scopes, sites (* for every site), name
  powerplane tokens revoke --id ID

Scopes: ${SCOPES.join(' ')}

Flags:
${CLIENT_FLAGS_HELP}
  --json            print tokens as JSON, one per line
  -h, --help        show this help`;

const FLAGS = {
  ...CLIENT_FLAGS,
  name: { type: 'string' },
  scope: { type: 'string', multiple: true },
  site: { type: 'string', multiple: true },
  'expires-days': { type: 'string' },
  id: { type: 'string' },
  all: { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `powerplane tokens create|list|revoke`, over gRPC. */
export async function tokensCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, FLAGS);
  const action = positionals[0];
  if (values.help || !action) {
    console.log(TOKENS_HELP);
    return values.help ? 0 : 2;
  }
  const client = createClient(TokenService, clientTransport(values));
  switch (action) {
    case 'create': {
      const days = values['expires-days'] === undefined ? undefined : Number(values['expires-days']);
      if (days !== undefined && !(days > 0 && days <= MAX_TOKEN_LIFETIME_DAYS)) {
        throw new UsageError(
          `--expires-days must be a number of days above 0 and at most ${MAX_TOKEN_LIFETIME_DAYS} ` +
            `(got ${JSON.stringify(values['expires-days'])})`,
        );
      }
      const res = await client.createToken({
        name: values.name ?? '',
        scopes: values.scope ?? [],
        sites: values.site ?? [],
        ...(days !== undefined ? { expireTime: timestampFromMs(Date.now() + days * 86_400_000) } : {}),
      });
      console.log(res.secret);
      if (res.token) console.error(`created token ${res.token.id} (${res.token.name}); the secret above is shown only once`);
      return 0;
    }
    case 'list': {
      let pageToken = '';
      // Bounded: 10 000 pages of at least one token each.
      for (let page = 0; page < 10_000; page++) {
        const res = await client.listTokens({ includeRevoked: values.all ?? false, pageSize: 1000, pageToken });
        for (const t of res.tokens) console.log(values.json ? JSON.stringify(toJson(t)) : format(t));
        pageToken = res.nextPageToken;
        if (pageToken === '') break;
      }
      return 0;
    }
    case 'revoke': {
      const { token } = await client.revokeToken({ id: values.id ?? '' });
      if (token) console.log(format(token));
      return 0;
    }
    default:
      console.error(`unknown tokens action ${JSON.stringify(action)}\n\n${TOKENS_HELP}`);
      return 2;
  }
}

function toJson(t: TokenInfo) {
  return {
    id: t.id,
    name: t.name,
    prefix: t.prefix,
    scopes: t.scopes,
    sites: t.sites,
    createdBy: t.createdBy,
    createTime: t.createTime ? timestampDate(t.createTime).toISOString() : undefined,
    expireTime: t.expireTime ? timestampDate(t.expireTime).toISOString() : undefined,
    revokeTime: t.revokeTime ? timestampDate(t.revokeTime).toISOString() : undefined,
  };
}

function format(t: TokenInfo): string {
  const state = t.revokeTime ? 'revoked' : t.expireTime && timestampDate(t.expireTime) < new Date() ? 'expired' : 'valid';
  // Every API token expires, so when is worth a column: a token's renewal is due before then.
  const expires = t.expireTime ? `expires ${timestampDate(t.expireTime).toISOString()}` : 'never expires';
  return [t.id, `${t.prefix}…`, state, expires, t.scopes.join(','), t.sites.length ? t.sites.join(',') : '*', t.name].join('\t');
}
