import type { ColumnType, Generated } from 'kysely';

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

/** The tables the audit trail reads and writes. */
export type AuditTables = {
  'powerplane.audit_log': AuditLogTable;
};
