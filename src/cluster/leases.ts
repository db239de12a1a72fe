import type { ClockTimer } from '../clock.ts';
import { InvalidArgumentError } from '../errors.ts';
import { bounded } from './bounded.ts';
import type { Fence, LeaseListener, LeaseManager } from './cluster.types.ts';
import { createLeaseDeadlines, type HeldTenure, type LeaseDeadlines } from './lease-deadlines.ts';
import { startRenewerThread, type RenewerThread } from './lease-renewer.ts';
import type { RenewerReport } from './lease-renewer.types.ts';
import { createLeaseMetrics } from './leases.metrics.ts';
import type { LeaseManagerDeps, LostWhy, Tenure } from './leases.types.ts';
import { createRenewalDiagnostics } from './renewal-diagnostics.ts';
import { shardRanges } from './shard-ranges.ts';
import {
  claimShards,
  heartbeatAndRenew,
  leaveReplicas,
  readShardCount,
  releaseShards,
  type ClaimedLease,
  type Release,
  type Renewal,
} from './leases.repository.ts';

/** Renewals on the way at once: one more may start while a slow one (a dead pooled connection) is still bounded. */
const MAX_RENEWALS_IN_FLIGHT = 2;

/**
 * This replica's leases on shards, as `docs/operations.md` describes them. Every third of
 * the lease it renews, in one statement, its `replicas` row and every shard it holds,
 * each conditional on (shard, owner, epoch); a shard the statement does not return is lost
 * at once ('taken'). Each renewal also says how many replicas are live and how many rows
 * are free or expired: below its fair share (`ceil(shards / live replicas)`) it claims
 * (epoch + 1, `for update skip locked`), above it it hands the excess over, highest shard
 * numbers first. Nothing moves otherwise.
 *
 * The local deadline of a shard is the monotonic time its last successful renewal was
 * sent, plus the lease, minus one renewal interval: the row cannot have expired in the
 * database before then, whatever the network did to the statement. A timer at the
 * deadline loses the shard ('expired') without touching the database, and `fence()`
 * refuses past it even before the timer runs. A new owner of a shard whose previous owner
 * did not hand it over may write `writeGuardMs` after the old lease ran out (by the
 * database's clock, counted on its monotonic clock from the claim's answer): the old owner
 * stopped by its deadline, a renewal interval before its lease ran out, and a Modbus write
 * already sent lands within the request timeout. A shard handed over is writable at once.
 *
 * A hand-over (a shed or {@link LeaseManager.stop}) tells the listener `lost('released')`
 * and waits for it, up to the lease plus the guard, renewing meanwhile; it then releases
 * the rows conditional on their epochs, or, for a listener that did not finish in time,
 * as after a crash (`released = false`, the expiry kept): the next owner waits the guard.
 */
export function createLeaseManager(deps: LeaseManagerDeps): LeaseManager {
  const { db, replicaId, leaseMs, writeGuardMs, clock, log } = deps;
  if (!Number.isInteger(leaseMs) || leaseMs < 3)
    throw new InvalidArgumentError('leaseMs', leaseMs, 'must be a whole number of ms, at least 3');
  if (!Number.isFinite(writeGuardMs) || writeGuardMs < 0)
    throw new InvalidArgumentError('writeGuardMs', writeGuardMs, 'must be 0 or more ms');
  if (replicaId === '') throw new InvalidArgumentError('replicaId', replicaId, 'must not be empty');
  const renewEveryMs = Math.floor(leaseMs / 3);
  /** From a renewal's sending to the local deadline it sets: one interval short of the lease. */
  const deadlineMs = leaseMs - renewEveryMs;
  /** How long the listener may take to stop a shard's writers during a hand-over. */
  const handOverMs = leaseMs + writeGuardMs;

  const held = new Map<number, Tenure>();
  const metrics = createLeaseMetrics(deps.metricsRegistry, () => held.size);
  const diagnostics = createRenewalDiagnostics(clock, deps.metricsRegistry, renewEveryMs);
  const inFlight = new Set<Promise<unknown>>();
  let listener: LeaseListener | undefined;
  let shardCount = 0;
  let running = false;
  let leaving = false;
  let failing = false;
  let renewalsInFlight = 0;
  let tickTimer: ClockTimer | undefined;
  let deadlineTimer: ClockTimer | undefined;
  let rebalancing: Promise<void> | undefined;
  let startPromise: Promise<void> | undefined;
  let stopPromise: Promise<void> | undefined;

  const track = <T>(work: Promise<T>): Promise<T> => {
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work)).catch(() => undefined);
    return work;
  };
  /** Every shard's deadline, shared with the renewal thread; made once the shard count is known. */
  let deadlines: LeaseDeadlines = createLeaseDeadlines(0);
  let thread: RenewerThread | undefined;
  const deadlineOf = (t: Tenure) => deadlines.deadline(t.shard, t.epoch);
  const writable = (t: Tenure | undefined): t is Tenure => t !== undefined && t.state === 'writable' && clock.now() < deadlineOf(t);

  function tick(): void {
    clock.clearTimeout(tickTimer);
    if (!running) return;
    // With a renewal thread, a main-thread renewal is a one-off (claimSoon): no timer.
    if (!thread) tickTimer = clock.setTimeout(tick, renewEveryMs);
    const tickLateMs = thread ? 0 : diagnostics.ticked();
    if (renewalsInFlight >= MAX_RENEWALS_IN_FLIGHT) return;
    void track(renew(tickLateMs));
  }

  /** One renewal from this thread: on `db`, moving the deadlines itself. */
  async function renew(tickLateMs = 0): Promise<void> {
    renewalsInFlight++;
    const sentAt = clock.now();
    const sent = deadlines.held();
    let renewal: Renewal;
    try {
      renewal = await bounded(heartbeatAndRenew(db, replicaId, leaseMs, sent), deadlineMs, clock, 'lease renewal');
    } catch (err) {
      return failed(sentAt, tickLateMs, (err as Error).message);
    } finally {
      renewalsInFlight--;
    }
    const receivedAt = clock.now();
    // A deadline already passed stays passed: a late success does not bring a shard back.
    const renewed = new Set(renewal.renewed);
    for (const { shard, epoch } of sent) if (renewed.has(shard)) deadlines.extend(shard, epoch, sentAt + deadlineMs, receivedAt);
    succeeded(sentAt, receivedAt, tickLateMs, sent, renewal);
  }

  function failed(sentAt: number, tickLateMs: number, err: string): void {
    const fields = { err, replicaId, ...diagnostics.timing(sentAt, tickLateMs) };
    if (!failing) log.warn(fields, 'lease renewal failed: shards are lost at their deadline unless one succeeds');
    else log.debug(fields, 'lease renewal failed again');
    failing = true;
  }

  /** What a renewal found, its deadlines already moved: shards taken are lost, shares evened out. */
  function succeeded(sentAt: number, receivedAt: number, tickLateMs: number, sent: readonly HeldTenure[], renewal: Renewal): void {
    metrics.renewed((receivedAt - sentAt) / 1_000);
    if (failing) log.info({ replicaId }, 'lease renewals succeed again');
    failing = false;
    // Late: a held shard's deadline passed before this renewal's answer came.
    if ([...held.values()].some((t) => deadlineOf(t) <= receivedAt))
      log.warn(
        { replicaId, ...diagnostics.timing(sentAt, tickLateMs, renewal.dbMs, receivedAt) },
        'lease renewal late: shards past their deadline are lost',
      );
    diagnostics.renewed(sentAt);
    checkDeadlines();
    const renewed = new Set(renewal.renewed);
    const taken: Tenure[] = [];
    for (const { shard, epoch } of sent) {
      const tenure = held.get(shard);
      if (tenure && tenure.epoch === epoch && !renewed.has(shard)) taken.push(tenure);
    }
    lose(taken, 'taken');
    armDeadline();
    rebalance(renewal);
  }

  function startThread(url: string): Promise<RenewerThread> {
    return startRenewerThread({
      ...{ url, replicaId, leaseMs, renewEveryMs, deadlineMs, clock, deadlines },
      onReport(report: RenewerReport) {
        if (report.t === 'renewed') succeeded(report.sentAt, report.receivedAt, report.tickLateMs, report.sent, report.renewal);
        else if (report.t === 'failed') failed(report.sentAt, report.tickLateMs, report.err);
        else if (report.t === 'log') log.warn(report.fields, report.msg);
      },
      onCrash(err) {
        // Renewals go on from this thread: slower under load, never unsafe.
        log.error({ err: err.message, replicaId }, 'the lease renewal thread failed: renewing from the main thread');
        thread = undefined;
        if (running && !leaving) tick();
      },
    });
  }

  function rebalance({ live, claimable }: Renewal): void {
    if (!running || leaving || rebalancing) return;
    const target = Math.ceil(shardCount / live);
    const staying = [...held.values()].filter((t) => t.state !== 'leaving');
    let work: Promise<void>;
    if (staying.length > target) {
      const excess = staying.sort((a, b) => b.shard - a.shard).slice(0, staying.length - target);
      work = shed(excess, target, live);
    } else if (held.size < target && claimable > 0) {
      work = claim(target - held.size);
    } else {
      return;
    }
    rebalancing = track(work).finally(() => (rebalancing = undefined));
  }

  /** What a claimed shard's guard has left, counted from the old lease's end (see the file header). */
  const guardWait = (c: ClaimedLease) => (c.handedOver ? 0 : Math.max(0, c.remainingMs + writeGuardMs));
  async function claim(limit: number): Promise<void> {
    const sentAt = clock.now();
    let claimed: ClaimedLease[];
    try {
      claimed = await bounded(claimShards(db, replicaId, leaseMs, limit), deadlineMs, clock, 'lease claim');
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'claiming shards failed; trying again at the next renewal');
      return;
    }
    const receivedAt = clock.now();
    for (const row of claimed) {
      const previous = held.get(row.shard);
      if (previous) lose([previous], 'taken');
      const tenure: Tenure = {
        shard: row.shard,
        epoch: row.epoch,
        state: 'guard',
        acquired: false,
        guardTimer: undefined,
      };
      held.set(row.shard, tenure);
      deadlines.set(row.shard, row.epoch, sentAt + deadlineMs);
      metrics.change('acquired');
      guard(tenure, receivedAt + guardWait(row));
    }
    const waits = claimed.filter((c) => guardWait(c) > 0);
    const fields = { guarded: shardRanges(waits.map((c) => c.shard)), guardMs: Math.round(Math.max(0, ...waits.map(guardWait))) };
    if (claimed.length > 0) log.info({ shards: shardRanges(claimed.map((c) => c.shard)), ...fields }, 'claimed shards');
    armDeadline();
  }

  /** Makes `tenure` writable at `writableAt` (monotonic), re-arming if a timer fires early. */
  function guard(tenure: Tenure, writableAt: number): void {
    const wait = writableAt - clock.now();
    if (wait > 0) {
      tenure.guardTimer = clock.setTimeout(() => {
        tenure.guardTimer = undefined;
        if (held.get(tenure.shard) === tenure) guard(tenure, writableAt);
      }, wait);
      return;
    }
    if (held.get(tenure.shard) !== tenure || tenure.state !== 'guard' || leaving) return;
    if (clock.now() >= deadlineOf(tenure)) return checkDeadlines();
    tenure.state = 'writable';
    tenure.acquired = true;
    try {
      listener!.acquired(tenure.shard, tenure.epoch);
    } catch (err) {
      log.error({ err: (err as Error).message, shard: tenure.shard }, 'the lease listener failed on an acquired shard');
    }
  }

  /** Drops `t`: no deadline, no guard timer. */
  function forget(t: Tenure): void {
    held.delete(t.shard);
    deadlines.clear(t.shard);
    clock.clearTimeout(t.guardTimer);
  }

  function checkDeadlines(): void {
    const now = clock.now();
    lose(
      [...held.values()].filter((t) => deadlineOf(t) <= now),
      'expired',
    );
    armDeadline();
  }

  function armDeadline(): void {
    clock.clearTimeout(deadlineTimer);
    deadlineTimer = undefined;
    let next = Infinity;
    for (const t of held.values()) next = Math.min(next, deadlineOf(t));
    if (next !== Infinity) deadlineTimer = clock.setTimeout(checkDeadlines, Math.max(0, next - clock.now()));
  }

  /** Forgets `tenures` and tells the listener of those it had acquired; a tenure being handed over is only forgotten. */
  function lose(tenures: readonly Tenure[], why: LostWhy): void {
    const told: number[] = [];
    for (const t of tenures) {
      if (held.get(t.shard) !== t) continue;
      forget(t);
      if (t.state === 'leaving') continue;
      metrics.change(why);
      told.push(t.shard);
      if (!t.acquired) continue;
      void Promise.resolve()
        .then(() => listener!.lost(t.shard, t.epoch, why))
        .catch((err: Error) => log.error({ err: err.message, shard: t.shard }, 'the lease listener failed on a lost shard'));
    }
    const stall = why === 'expired' ? { renewalsInFlight, ...diagnostics.expiry() } : {};
    if (told.length > 0) log.warn({ shards: shardRanges(told), why, replicaId, ...stall }, 'shards lost');
  }

  /**
   * Stops writing `tenures` (lost('released'), awaited up to {@link handOverMs}) and says
   * how each may be released. They stay held, and renewed, until their rows are released.
   */
  async function handOver(tenures: readonly Tenure[]): Promise<Release[]> {
    for (const t of tenures) {
      clock.clearTimeout(t.guardTimer);
      t.state = 'leaving';
      metrics.change('released');
    }
    const stopped = await Promise.all(
      tenures.map(async (t) => {
        // A shard still in its guard was never written here, but its previous owner may still be writing.
        if (!t.acquired) return false;
        try {
          await bounded(
            Promise.resolve().then(() => listener!.lost(t.shard, t.epoch, 'released')),
            handOverMs,
            clock,
            `stopping the writers of shard ${t.shard}`,
          );
          return true;
        } catch (err) {
          log.warn({ err: (err as Error).message, shard: t.shard }, 'writers did not stop in time: the shard is let go as after a crash');
          return false;
        }
      }),
    );
    return tenures.map((t, i) => ({ shard: t.shard, epoch: t.epoch, clean: stopped[i]! }));
  }

  async function shed(tenures: readonly Tenure[], target: number, live: number): Promise<void> {
    log.info({ shards: shardRanges(tenures.map((t) => t.shard)), target, live }, 'handing shards over to even out the shares');
    const releases = await handOver(tenures);
    try {
      await bounded(releaseShards(db, replicaId, releases), leaseMs, clock, 'lease release');
    } catch (err) {
      // Not renewed any more, the rows expire and are claimed as after a crash.
      log.warn({ err: (err as Error).message }, 'releasing shards failed: they expire instead');
    }
    for (const t of tenures) if (held.get(t.shard) === t) forget(t);
    armDeadline();
    await tellOthers();
  }

  const tellOthers = async (): Promise<void> =>
    deps.notify?.({ k: 'leases', from: replicaId }).catch((err: Error) => {
      log.warn({ err: err.message }, 'could not tell the other replicas that leases were released; they claim at their next renewal');
    });

  async function leave(): Promise<void> {
    leaving = true;
    await startPromise?.catch(() => undefined);
    if (!listener || !running) return diagnostics.stop();
    await rebalancing;
    const releases = await handOver([...held.values()].filter((t) => t.state !== 'leaving'));
    // No renewal may follow the leave: it would insert the replica's row again.
    running = false;
    clock.clearTimeout(tickTimer);
    await thread?.stop();
    await Promise.allSettled([...inFlight]);
    try {
      const released = await bounded(leaveReplicas(db, replicaId, releases), leaseMs, clock, 'leaving the replicas');
      log.info({ replicaId, released: shardRanges(released) }, 'left the replicas; shards released');
    } catch (err) {
      log.warn(
        { err: (err as Error).message, replicaId },
        'releasing the leases at stop failed: other replicas take them when they expire',
      );
    }
    for (const t of [...held.values()]) forget(t);
    clock.clearTimeout(deadlineTimer);
    diagnostics.stop();
    await tellOthers();
  }

  return {
    replicaId,
    get shardCount() {
      return shardCount;
    },
    fence(shard: number): Fence | undefined {
      const tenure = held.get(shard);
      return writable(tenure) ? { replica: replicaId, shard, epoch: tenure.epoch } : undefined;
    },
    writableShards: () =>
      [...held.values()]
        .filter(writable)
        .map((t) => t.shard)
        .sort((a, b) => a - b),
    start(given: LeaseListener): Promise<void> {
      if (listener) return Promise.reject(new Error('the lease manager was started already'));
      listener = given;
      startPromise = (async () => {
        shardCount = await bounded(readShardCount(db), Math.max(leaseMs, 5_000), clock, 'reading the shard count');
        deadlines = createLeaseDeadlines(shardCount);
        if (leaving) return;
        // Renewing before the first claim: a claimed shard's deadline is a renewal interval away.
        if (deps.renewalThreadUrl)
          thread = await startThread(deps.renewalThreadUrl).catch((err: Error) => {
            log.error({ err: err.message, replicaId }, 'the lease renewal thread did not start: renewing from the main thread');
            return undefined;
          });
        running = true;
        await track(renew());
        await rebalancing;
        if (!running) return;
        if (!thread) tickTimer = clock.setTimeout(tick, renewEveryMs);
        log.info(
          { replicaId, shardCount, leaseMs, writeGuardMs, held: held.size, renewals: thread ? 'own thread' : 'main thread' },
          'joined the replicas',
        );
      })();
      return startPromise;
    },
    stop: () => (stopPromise ??= leave()),
    claimSoon(): void {
      if (running && !leaving) tick();
    },
  };
}
