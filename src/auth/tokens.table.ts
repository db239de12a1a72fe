import type { Generated } from 'kysely';

/** `powerplane.api_tokens`: static API tokens, stored as SHA-256 hashes. */
export interface ApiTokensTable {
  id: string;
  name: string;
  token_hash: Uint8Array;
  prefix: string;
  scopes: string[];
  sites: string[] | null;
  created_by: string;
  created_at: Generated<Date>;
  expire_time: Date | null;
  revoked_at: Date | null;
  revoked_by: string | null;
}

/** The tables authentication reads and writes. */
export type AuthTables = {
  'powerplane.api_tokens': ApiTokensTable;
};
