import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { TokenInfoSchema, type TokenService } from '../../gen/powerplane/v1/auth_pb.ts';
import { PermissionDeniedError } from '../errors.ts';
import { optionalDate } from '../timestamp.ts';
import { DEFAULT_PAGE_BYTES } from '../page-token.ts';
import { responseSizer } from '../response-size.ts';
import { principalOf } from '../rpc/principal.ts';
import { defaultTokenExpiry, validateNewToken, type TokenInfo, type TokenStore } from './tokens.ts';

/**
 * The TokenService RPCs (scope `tokens:admin`, checked by the authentication interceptor;
 * `GetCaller` any scope). `pageBytes` bounds the bytes of tokens on one ListTokens page
 * (default 1 MiB).
 * A token created here always expires: by default after `DEFAULT_TOKEN_LIFETIME_DAYS` (90)
 * days, at most `MAX_TOKEN_LIFETIME_DAYS` (365) days ahead.
 */
export function createTokenService(tokens: TokenStore, options: { readonly pageBytes?: number } = {}): ServiceImpl<typeof TokenService> {
  const pageBytes = options.pageBytes ?? DEFAULT_PAGE_BYTES;
  return {
    async createToken(req, ctx) {
      const caller = principalOf(ctx);
      // Every token made through the API expires: unset means the default lifetime, never "never".
      const input = {
        name: req.name,
        scopes: req.scopes,
        sites: req.sites,
        expireTime: optionalDate('expire_time', req.expireTime) ?? defaultTokenExpiry(Date.now()),
      };
      // Bad input is answered as such before any question of what the caller may grant
      // (the store checks it again: it is also called directly).
      validateNewToken(input, Date.now());
      // A caller bound to sites can hand out only what it has: no wider sites, no more scopes.
      if (caller.sites !== '*') {
        const allowed = caller.sites;
        if (req.sites.length === 0) throw new PermissionDeniedError(`sites must be named by ${caller.id}, which is bound to sites`);
        const outside = req.sites.find((s) => !allowed.has(s));
        if (outside !== undefined)
          throw new PermissionDeniedError(`sites names site ${JSON.stringify(outside)}, which ${caller.id} is not bound to`);
      }
      const wider = req.scopes.find((s) => !caller.scopes.has(s as never));
      if (wider !== undefined) throw new PermissionDeniedError(`scopes names ${JSON.stringify(wider)}, which ${caller.id} does not hold`);
      const { info, secret } = await tokens.create(input, caller.id);
      return { token: toPb(info), secret };
    },
    // A caller bound to sites sees and revokes only tokens bound within its sites: never an
    // unrestricted token, nor another site's.
    async listTokens(req, ctx) {
      const caller = principalOf(ctx);
      const size = responseSizer(ctx, TokenInfoSchema);
      const page = await tokens.list(req.includeRevoked, caller.sites === '*' ? undefined : caller.sites, {
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        budget: { bytes: pageBytes, sizeOf: (t) => size(toPb(t)) },
      });
      return { tokens: page.tokens.map(toPb), nextPageToken: page.nextPageToken };
    },
    async revokeToken(req, ctx) {
      const caller = principalOf(ctx);
      return { token: toPb(await tokens.revoke(req.id, caller.id, caller.sites === '*' ? undefined : caller.sites)) };
    },
    getCaller(_req, ctx) {
      const caller = principalOf(ctx);
      return { principal: caller.id, scopes: [...caller.scopes], sites: caller.sites === '*' ? [] : [...caller.sites].sort() };
    },
  };
}

function toPb(info: TokenInfo): MessageInitShape<typeof TokenInfoSchema> {
  return {
    id: info.id,
    name: info.name,
    prefix: info.prefix,
    scopes: [...info.scopes],
    sites: [...info.sites],
    createdBy: info.createdBy,
    createTime: timestampFromDate(info.createdAt),
    ...(info.expireTime ? { expireTime: timestampFromDate(info.expireTime) } : {}),
    ...(info.revokedAt ? { revokeTime: timestampFromDate(info.revokedAt) } : {}),
  };
}
