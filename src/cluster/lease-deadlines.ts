/**
 * The local deadline of every shard a replica holds, in shared memory so that the thread
 * that renews the leases and the thread that writes under them read and move the same
 * value without a message in between. One 64-bit slot per shard holds the low 16 bits of
 * the tenure's epoch and the deadline in microseconds of the lease manager's monotonic
 * clock (0: not held); every change of a slot is one atomic store or compare-and-swap, so
 * a renewal of an earlier tenure can never extend a later one.
 */

/** The memory of a {@link LeaseDeadlines}, handed to another thread to share it. */
export interface LeaseDeadlinesMemory {
  /** One `BigInt64` slot per shard. */
  readonly slots: SharedArrayBuffer;
  /** The full epoch of each slot's tenure, written before the slot. */
  readonly epochs: SharedArrayBuffer;
}

/** One shard's tenure as a renewal sends it. */
export interface HeldTenure {
  readonly shard: number;
  readonly epoch: number;
}

/** Every shard's local deadline, shared between threads. */
export interface LeaseDeadlines {
  readonly memory: LeaseDeadlinesMemory;
  /** Starts a tenure of `shard` under `epoch` with `deadlineMs` (clock ms). */
  set(shard: number, epoch: number, deadlineMs: number): void;
  /** Ends the tenure of `shard`: no deadline. */
  clear(shard: number): void;
  /**
   * Moves the deadline of `shard` to `deadlineMs` when its tenure is still the one under
   * `epoch`, its deadline has not passed at `nowMs` (a deadline passed stays passed) and
   * `deadlineMs` is later; returns whether it did.
   */
  extend(shard: number, epoch: number, deadlineMs: number, nowMs: number): boolean;
  /** The deadline of `shard` under `epoch`, clock ms; 0 when it is not held under that epoch. */
  deadline(shard: number, epoch: number): number;
  /** Every tenure with a deadline, as a renewal sends them. */
  held(): HeldTenure[];
}

const TAG_SHIFT = 47n;
const US_MASK = (1n << TAG_SHIFT) - 1n;
const TAG_MASK = 0xffffn;

const tagOf = (epoch: number): bigint => BigInt(epoch) & TAG_MASK;
/** Whole microseconds, rounded down: a deadline is never made later by rounding. */
const toUs = (ms: number): bigint => BigInt(Math.max(1, Math.floor(ms * 1_000)));
const pack = (epoch: number, ms: number): bigint => (tagOf(epoch) << TAG_SHIFT) | (toUs(ms) & US_MASK);

/** Deadlines of `shardCount` shards in fresh shared memory, or in `memory` another thread made. */
export function createLeaseDeadlines(shardCount: number, memory?: LeaseDeadlinesMemory): LeaseDeadlines {
  const mem = memory ?? {
    slots: new SharedArrayBuffer(8 * shardCount),
    epochs: new SharedArrayBuffer(8 * shardCount),
  };
  const slots = new BigInt64Array(mem.slots);
  const epochs = new BigInt64Array(mem.epochs);
  const count = slots.length;
  const inRange = (shard: number) => Number.isInteger(shard) && shard >= 0 && shard < count;
  const read = (shard: number, epoch: number): bigint | undefined => {
    const slot = Atomics.load(slots, shard);
    if (slot === 0n || slot >> TAG_SHIFT !== tagOf(epoch)) return undefined;
    return slot;
  };
  return {
    memory: mem,
    set(shard, epoch, deadlineMs) {
      if (!inRange(shard)) throw new RangeError(`shard ${shard} is not one of the ${count} shards`);
      Atomics.store(epochs, shard, BigInt(epoch));
      Atomics.store(slots, shard, pack(epoch, deadlineMs));
    },
    clear(shard) {
      if (inRange(shard)) Atomics.store(slots, shard, 0n);
    },
    extend(shard, epoch, deadlineMs, nowMs) {
      if (!inRange(shard)) return false;
      for (;;) {
        const slot = read(shard, epoch);
        if (slot === undefined) return false;
        const current = slot & US_MASK;
        const wanted = toUs(deadlineMs);
        if (current <= toUs(nowMs) || wanted <= current) return false;
        const next = (tagOf(epoch) << TAG_SHIFT) | wanted;
        if (Atomics.compareExchange(slots, shard, slot, next) === slot) return true;
      }
    },
    deadline(shard, epoch) {
      if (!inRange(shard)) return 0;
      const slot = read(shard, epoch);
      return slot === undefined ? 0 : Number(slot & US_MASK) / 1_000;
    },
    held() {
      const out: HeldTenure[] = [];
      for (let shard = 0; shard < count; shard++) {
        const slot = Atomics.load(slots, shard);
        if (slot === 0n) continue;
        const epoch = Number(Atomics.load(epochs, shard));
        // A tenure being replaced (epoch stored, slot not yet): the next renewal sends it.
        if (tagOf(epoch) === slot >> TAG_SHIFT) out.push({ shard, epoch });
      }
      return out;
    },
  };
}
