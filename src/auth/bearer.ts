import type { Interceptor } from '@connectrpc/connect';

/** A client interceptor sending `token` as the bearer credential of every call. */
export function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set('authorization', `Bearer ${token}`);
    return next(req);
  };
}
