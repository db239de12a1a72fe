import { sql } from 'kysely';
import type { Logger } from '../logger.ts';
import type { Database } from '../storage/database.ts';
import { notifyExpression, parseClusterMessage } from './cluster-message.ts';
import { CLUSTER_CHANNEL, type ClusterMessage, type Notifications } from './cluster.types.ts';

/** Dependencies of {@link createNotifications}. */
export interface NotificationsDeps {
  readonly database: Database;
  /** This replica's id: messages addressed (`to`) to another replica are not handed on. */
  readonly replicaId: string;
  readonly log: Logger;
}

/**
 * Listens on {@link CLUSTER_CHANNEL} and hands each valid message to the subscribers: every
 * message for all replicas (this replica's own included; a subscriber that has acted on
 * its own change skips `from === replicaId`) and those addressed to this replica. A
 * malformed payload is logged at warn and dropped; a subscriber that throws is logged and
 * the others still get the message. Sending is {@link notifyExpression} selected on the
 * executor given (inside a transaction: delivered once it commits) or on the pool.
 * Resolves once listening, so a message sent after that is not missed (short of a lost
 * connection, which {@link Notifications.onResync} reports).
 */
export async function createNotifications(deps: NotificationsDeps): Promise<Notifications> {
  const { database, replicaId, log } = deps;
  const subscribers = new Set<(message: ClusterMessage) => void>();
  const resyncs = new Set<() => void>();

  function deliver(payload: string): void {
    const parsed = parseClusterMessage(payload);
    if ('problem' in parsed) {
      log.warn({ problem: parsed.problem, payload: payload.slice(0, 200) }, 'malformed cluster message ignored');
      return;
    }
    const { message } = parsed;
    if ('to' in message && message.to !== replicaId) return;
    for (const handler of [...subscribers]) safely(`'${message.k}' subscriber failed`, () => handler(message));
  }

  function safely(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      log.error({ err }, what);
    }
  }

  const listening = await database.listen(CLUSTER_CHANNEL, deliver, () => {
    log.info('cluster messages may have been missed: resyncing');
    for (const handler of [...resyncs]) safely('resync handler failed', handler);
  });
  let closing: Promise<void> | undefined;
  return {
    subscribe(handler) {
      subscribers.add(handler);
      return () => void subscribers.delete(handler);
    },
    onResync(handler) {
      resyncs.add(handler);
      return () => void resyncs.delete(handler);
    },
    async notify(message, executor) {
      await sql`select ${notifyExpression(message)}`.execute(executor ?? database.db);
    },
    close() {
      closing ??= listening.close().finally(() => {
        subscribers.clear();
        resyncs.clear();
      });
      return closing;
    },
  };
}
