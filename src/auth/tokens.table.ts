import type { ColumnType, Generated } from 'kysely';

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

/** `powerplane.audit_log`: append-only record of changes and refused calls. */
export interface AuditLogTable {
  id: Generated<string>;
  at: Generated<Date>;
  call_id: string;
  principal: string;
  method: string;
  phase: 'requested' | 'completed' | 'failed' | 'refused';
  code: string | null;
  message: string | null;
  request: ColumnType<unknown, string | null, never>;
}

/** The tables authentication and audit read and write. */
export type AuthTables = {
  'powerplane.api_tokens': ApiTokensTable;
  'powerplane.audit_log': AuditLogTable;
};
