import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Logger } from '../logger.ts';
import type { AuditLogTable, AuditTables } from './audit.table.ts';
import { escapeUnstorable } from '../text.ts';

/** One audit row. */
export interface AuditEntry {
  readonly callId: string;
  readonly principal: string;
  /** `Service/Method`, e.g. `powerplane.v1.DispatchService/SubmitDispatch`. */
  readonly method: string;
  readonly phase: AuditLogTable['phase'];
  /** The Connect code name of a failed or refused call. */
  readonly code?: string;
  readonly message?: string;
  /** The request as protobuf JSON (changes only; never secrets). */
  readonly request?: unknown;
}

/** The audit trail: append-only (the database refuses UPDATE, DELETE and TRUNCATE). */
export interface AuditLog {
  record(entry: AuditEntry): Promise<void>;
  /**
   * Records a refused call, at most once per second per principal, method and code (a
   * client hammering a refusal must not turn into as many writes); the row's message
   * counts the refusals folded into it. Never throws: a refusal stands even when it
   * cannot be recorded (it is logged instead).
   */
  refused(entry: Omit<AuditEntry, 'phase' | 'callId'>): Promise<void>;
  /** Newest first; for tests and operators' tools. */
  list(options?: { principal?: string; limit?: number }): Promise<(AuditEntry & { at: Date })[]>;
}

/** Creates the audit trail over `powerplane.audit_log`. */
export function createAuditLog(deps: { db: Kysely<object>; log?: Logger; now?: () => number }): AuditLog {
  const db = deps.db.withTables<AuditTables>();
  const now = deps.now ?? Date.now;
  /** Per principal, method and code: when a refusal was last written and how many were folded since. */
  const recent = new Map<string, { at: number; folded: number }>();
  const log: AuditLog = {
    async refused(entry) {
      const key = `${entry.principal}\n${entry.method}\n${entry.code ?? ''}`;
      const at = now();
      const last = recent.get(key);
      if (last && at - last.at < 1_000) {
        last.folded++;
        return;
      }
      if (recent.size >= 10_000) recent.clear();
      recent.set(key, { at, folded: 0 });
      const folded = last?.folded ?? 0;
      const message = folded > 0 ? `${entry.message ?? ''} (and ${folded} more like it since the last row)` : entry.message;
      try {
        await log.record({ ...entry, callId: randomUUID(), phase: 'refused', ...(message !== undefined ? { message } : {}) });
      } catch (err) {
        deps.log?.warn({ err: (err as Error).message, method: entry.method, principal: entry.principal }, 'could not audit a refused call');
      }
    },
    async record(entry) {
      // Requests reach this only once their text is checked (`server/request-text.ts`);
      // messages and principals quote what callers sent, so they are stored escaped rather
      // than refused: a text PostgreSQL cannot hold must never make a call UNAVAILABLE.
      await db
        .insertInto('powerplane.audit_log')
        .values({
          call_id: entry.callId,
          principal: escapeUnstorable(entry.principal),
          method: entry.method,
          phase: entry.phase,
          code: entry.code ?? null,
          message: entry.message === undefined ? null : escapeUnstorable(entry.message.slice(0, 1_000)),
          request: entry.request === undefined ? null : JSON.stringify(entry.request),
        })
        .execute();
    },
    async list(options = {}) {
      let query = db
        .selectFrom('powerplane.audit_log')
        .selectAll()
        .orderBy('id', 'desc')
        .limit(options.limit ?? 100);
      if (options.principal) query = query.where('principal', '=', options.principal);
      return (await query.execute()).map((r) => ({
        callId: r.call_id,
        principal: r.principal,
        method: r.method,
        phase: r.phase,
        at: r.at,
        ...(r.code ? { code: r.code } : {}),
        ...(r.message ? { message: r.message } : {}),
        ...(r.request !== null ? { request: r.request } : {}),
      }));
    },
  };
  return log;
}
