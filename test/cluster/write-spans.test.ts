import { describe, expect, it } from 'vitest';
import type { WriteLogEntry } from '../../src/simulator/simulator.ts';
import { interleavings, spansOf, type WriteSpan } from '../support/write-spans.ts';

/** A hand-made write to unit `unit` on port 502 on connection `connection` (client port 40000 + connection). */
const write = (unit: number, connection: number, ms: number): WriteLogEntry => ({
  time: new Date(ms),
  port: 502,
  unitId: unit,
  functionCode: 16,
  address: 40_100,
  values: [1],
  outcome: 'applied',
  connection,
  remotePort: 40_000 + connection,
});

/** Connections 1 and 2 are replica a's, 3 and 4 replica b's; others unknown. */
const replicaOf = (span: WriteSpan) => ({ 40001: 'a', 40002: 'a', 40003: 'b', 40004: 'b' })[span.remotePort];

const count = (log: WriteLogEntry[]) => interleavings(spansOf(log), replicaOf).length;

describe('the double-write check of the simulator write log', () => {
  it('finds none in a clean hand-over: the old replica stops before the new one starts', () => {
    expect(count([write(1, 1, 0), write(1, 1, 10), write(1, 1, 20), write(1, 3, 30), write(1, 3, 40)])).toBe(0);
  });

  it('finds one when the old replica writes again after the new one began', () => {
    const log = [write(1, 1, 0), write(1, 3, 10), write(1, 1, 20), write(1, 3, 30)];
    const found = interleavings(spansOf(log), replicaOf);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ battery: '502/1', olderWriter: 'a', newerWriter: 'b' });
  });

  it('counts batteries, not writes: many interleaved writes to one battery are one', () => {
    const log = [write(1, 1, 0), write(1, 3, 1), write(1, 1, 2), write(1, 3, 3), write(1, 1, 4), write(1, 3, 5)];
    expect(count(log)).toBe(1);
  });

  it('counts each battery written by two replicas interleaved', () => {
    const log = [write(1, 1, 0), write(2, 2, 0), write(1, 3, 5), write(2, 4, 5), write(1, 1, 6), write(2, 2, 7), write(3, 1, 8)];
    expect(count(log)).toBe(2);
  });

  it('orders writes by their place in the log, not by their time: writes in the same millisecond still interleave', () => {
    expect(count([write(1, 1, 100), write(1, 3, 100), write(1, 1, 100)])).toBe(1);
  });

  it('does not count a replica reconnecting: both connections are its own', () => {
    expect(count([write(1, 1, 0), write(1, 2, 10), write(1, 1, 20), write(1, 2, 30)])).toBe(0);
  });

  it('counts a connection of unknown origin as a writer of its own, so it cannot hide an interleaving', () => {
    expect(count([write(1, 1, 0), write(1, 9, 10), write(1, 1, 20)])).toBe(1);
    expect(count([write(1, 8, 0), write(1, 9, 10), write(1, 8, 20)])).toBe(1);
  });

  it('finds none across a hand-over and back: each writer stops before the next starts', () => {
    expect(count([write(1, 1, 0), write(1, 3, 10), write(1, 3, 20), write(1, 2, 30), write(1, 2, 40)])).toBe(0);
  });

  it('keeps one span per battery and connection, from the first write to the last', () => {
    const spans = spansOf([write(1, 1, 5), write(2, 1, 6), write(1, 1, 7), write(1, 3, 9)]);
    expect(spans).toHaveLength(3);
    expect(spans.find((s) => s.battery === '502/1' && s.connection === 1)).toMatchObject({
      firstSeq: 0,
      lastSeq: 2,
      firstMs: 5,
      lastMs: 7,
      writes: 2,
    });
  });
});
