/**
 * What the simulator's transport needs from a simulated device. Time is passed in (ms since
 * the epoch) so devices advance lazily on each request and tests need no timers.
 */

/** Kinds of simulated device: SunSpec batteries and meters, Tesla-style controllers, batteries on a custom register map. */
export type SimulatedKind = 'bess' | 'meter' | 'tesla' | 'custom';

/** A device behind a unit id. */
export interface SimDevice {
  readonly kind: SimulatedKind;
  /** Serves function 3/4; throws `ModbusServerException` for bad addresses. */
  read(table: 'holding' | 'input', address: number, count: number, nowMs: number): ArrayLike<number>;
  /** Serves function 6/16; throws `ModbusServerException` (02 read-only address, 03 bad value). */
  write(address: number, values: readonly number[], nowMs: number): void;
  /** Power the device delivers now, W, positive = discharge (what meters follow). */
  activePowerW(nowMs: number): number;
  /** A plain snapshot of the device's state for tests and logs. */
  snapshot(nowMs: number): object;
}
