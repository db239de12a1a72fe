import { Counter, type Registry as MetricsRegistry } from 'prom-client';
import type { Logger } from '../logger.ts';
import type { Fence } from './cluster.types.ts';

/** The tables whose controller writes are fenced. */
export type FencedTable = 'setpoint_events' | 'command_source_state' | 'command_source_history';

/**
 * What becomes of a controller write the database refused because its fence no longer held
 * (the shard's lease expired, was released or was taken since): it is logged at warn with
 * the fence and counted, never thrown, so the control loop carries on with the shards it
 * still holds.
 */
export interface FenceRefusals {
  /** Reports that `rows` rows of `table`, written under `fence`, were not written. */
  refused(table: FencedTable, fence: Fence, rows: number): void;
}

/** The counter's name in /metrics. */
export const FENCED_WRITES_REFUSED_METRIC = 'powerplane_fenced_writes_refused_total';

/**
 * Creates the report: `powerplane_fenced_writes_refused_total{table}` in `metricsRegistry`
 * (reused when created again on the same registry) and a warning per refused write.
 */
export function createFenceRefusals(deps: { log: Logger; metricsRegistry?: MetricsRegistry }): FenceRefusals {
  const counter =
    (deps.metricsRegistry?.getSingleMetric(FENCED_WRITES_REFUSED_METRIC) as Counter<'table'> | undefined) ??
    new Counter({
      name: FENCED_WRITES_REFUSED_METRIC,
      help: 'Rows of controller writes the database refused because the shard lease they were made under no longer held.',
      labelNames: ['table'],
      registers: deps.metricsRegistry ? [deps.metricsRegistry] : [],
    });
  return {
    refused(table, fence, rows) {
      if (rows <= 0) return;
      counter.inc({ table }, rows);
      deps.log.warn(
        { table, rows, replica: fence.replica, shard: fence.shard, epoch: fence.epoch },
        'controller write refused: the shard lease it was made under no longer holds',
      );
    },
  };
}
