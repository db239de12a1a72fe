/**
 * The edge agent: polls a site's meters and batteries over Modbus, turns readings into
 * batches (closed by size or delay), appends every batch durably to the on-disk spool, and
 * streams the spool to the control plane, which acknowledges batches after commit. In relay
 * mode it also writes setpoints the control plane sends down the stream.
 *
 * A SunSpec battery's poll gives a battery reading and, at the same time, a datum reading of
 * the values BessReading has no field for (source `/sunspec/bess`, see `toBessDatum`). Both
 * travel in the same ReadingBatch message the spool stores as its payload; spooled batches
 * from before datum readings are the same message without them, so they replay unchanged.
 *
 * Usable as a library (`createAgent(config, deps)` → `start()` / `stop()`) and as
 * `powerplane agent --config site.json`.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import { ReadingBatchSchema, type BessReading, type DatumReading, type MeterReading } from '../../gen/powerplane/v1/telemetry_pb.ts';
import type { Logger } from '../logger.ts';
import { createPoller, type PollReading } from '../modbus/poller.ts';
import { toBessDatum, toBessReading, toMeterReading } from './reading-messages.ts';
import { createRelay, type Relay } from './relay.ts';
import { RELAY_EPOCHS_FILE } from './relay-epochs.ts';
import { registerProfileOf, SiteConfigError, type AgentDeviceConfig, type SiteConfig } from './agent-config.ts';
import { openSpool, type Spool, type SpoolStats } from './spool.ts';
import type { AgentTls } from './grpc-channel.ts';
import {
  createStreamClient,
  emptyStreamStats,
  type StreamClient,
  type StreamClientOptions,
  type StreamClientStats,
} from './stream-client.ts';

/** Dependencies and tuning of {@link createAgent}; all optional. */
export interface AgentDeps {
  log?: Logger;
  /** Stream tuning (window, backoff, keepalive, ack timeout) passed to the stream client. */
  stream?: Pick<StreamClientOptions, 'window' | 'backoff' | 'keepaliveMs' | 'ackTimeoutMs' | 'random' | 'onAck'>;
  /** Segment size of the spool, bytes; default maxBytes / 8 (at most 16 MiB). */
  spoolSegmentBytes?: number;
  /** Per-request Modbus timeout of pollers and relay writers, ms; default 1000. */
  modbusTimeoutMs?: number;
  /** Called with each poll outcome (tests and the demo watch the site through it). */
  onReading?: (device: AgentDeviceConfig, reading: PollReading) => void;
}

/** Counters of a running agent. */
export interface AgentStats {
  /** Successful polls turned into meter or battery readings. */
  readings: number;
  /** Datum readings made beside battery readings (one per SunSpec battery poll with any extra value known). */
  datumReadings: number;
  /** Polls that failed (no reading is sent for them). */
  pollErrors: number;
  /** Readings durably in the spool (appended batches' meter, battery and datum readings). */
  readingsSpooled: number;
  batchesSpooled: number;
  /** Readings (of all kinds) waiting in the open batch. */
  readingsBuffered: number;
  /** Readings lost because the spool could not take their batch (disk error). */
  readingsLost: number;
  spool: SpoolStats;
  stream: StreamClientStats;
}

/** A site's edge agent. */
export interface Agent {
  /** Opens the spool (recovering it), connects, starts polling. */
  start(): Promise<void>;
  /**
   * Stops polling, spools the open batch, waits up to `drainMs` (default 0) for acks of batches in
   * flight, disconnects, closes the spool. What is unacknowledged stays spooled for the next start.
   * Idempotent.
   */
  stop(options?: { drainMs?: number }): Promise<void>;
  stats(): AgentStats;
}

/** Creates an agent for one site; nothing runs until `start()`. */
export function createAgent(config: SiteConfig, deps: AgentDeps = {}): Agent {
  const log = deps.log?.child({ module: 'agent', site: config.site });
  let spool: Spool | undefined;
  let stream: StreamClient | undefined;
  let relay: Relay | undefined;
  const pollers: Array<{ stop(): Promise<void> }> = [];
  const counters = { readings: 0, datumReadings: 0, pollErrors: 0, readingsSpooled: 0, batchesSpooled: 0, readingsLost: 0 };
  let meter: MeterReading[] = [];
  let bess: BessReading[] = [];
  let datum: DatumReading[] = [];
  const buffered = (): number => meter.length + bess.length + datum.length;
  let batchTimer: NodeJS.Timeout | undefined;
  let appending: Promise<void> = Promise.resolve();
  let started = false;
  let stopping: Promise<void> | undefined;

  const flush = (): void => {
    clearTimeout(batchTimer);
    batchTimer = undefined;
    if (buffered() === 0 || !spool) return;
    const m = meter;
    const b = bess;
    const d = datum;
    const count = buffered();
    meter = [];
    bess = [];
    datum = [];
    const s = spool;
    // Appends run in order; each resolves after its fsync.
    appending = appending.then(async () => {
      try {
        await s.append((sequence) =>
          toBinary(ReadingBatchSchema, create(ReadingBatchSchema, { sequence, meterReadings: m, bessReadings: b, datumReadings: d })),
        );
        counters.batchesSpooled++;
        counters.readingsSpooled += count;
      } catch (err) {
        counters.readingsLost += count;
        log?.error({ err, readings: count }, 'could not spool a batch; its readings are lost');
      }
    });
  };

  /** Closes the batch at `maxReadings` readings of all kinds (the server's batch limit counts them all), else arms the delay. */
  const filled = (): void => {
    if (buffered() >= config.batch.maxReadings) flush();
    else batchTimer ??= setTimeout(flush, config.batch.maxDelayMs);
  };

  const add = (device: AgentDeviceConfig, reading: PollReading): void => {
    deps.onReading?.(device, reading);
    if (reading.error !== undefined) {
      counters.pollErrors++;
      return;
    }
    const ms = reading.time.getTime();
    if (device.kind === 'bess' && reading.bess) {
      counters.readings++;
      bess.push(toBessReading(device, ms, reading.bess));
      filled();
      const extra = toBessDatum(device, ms, reading.bess);
      if (extra) {
        counters.datumReadings++;
        datum.push(extra);
        filled();
      }
    } else if (device.kind === 'meter' && reading.meter) {
      counters.readings++;
      meter.push(toMeterReading(device, ms, reading.meter));
      filled();
    }
  };

  return {
    async start() {
      if (started) throw new Error('agent already started');
      started = true;
      // First, before anything is opened: an unreadable TLS file is a config error.
      const tls = config.server.tls ? await readTls(config.server.tls) : undefined;
      spool = await openSpool({
        dir: config.spool.dir,
        maxBytes: config.spool.maxBytes,
        ...(deps.spoolSegmentBytes ? { segmentBytes: deps.spoolSegmentBytes } : {}),
        ...(log ? { log: log.child({ part: 'spool' }) } : {}),
      });
      relay = createRelay({
        devices: config.devices,
        onOutcome: (o) => stream?.sendOutcome(o),
        epochFile: path.join(config.spool.dir, RELAY_EPOCHS_FILE),
        ...(deps.modbusTimeoutMs ? { requestTimeoutMs: deps.modbusTimeoutMs } : {}),
        ...(log ? { log: log.child({ part: 'relay' }) } : {}),
      });
      const r = relay;
      stream = createStreamClient({
        url: config.server.url,
        ...(config.server.token ? { token: config.server.token } : {}),
        ...(tls ? { tls } : {}),
        // The hello costs one message a session; only agents with batteries can relay.
        ...(config.devices.some((d) => d.kind === 'bess') ? { site: config.site } : {}),
        spool,
        onRelaySetpoint: (sp) => r.handle(sp),
        ...deps.stream,
        ...(log ? { log: log.child({ part: 'stream' }) } : {}),
      });
      for (const device of config.devices) {
        pollers.push(
          createPoller({
            endpoint: device.endpoint,
            profile: registerProfileOf(device),
            kind: device.kind,
            intervalMs: device.pollingIntervalMs,
            onReading: (reading) => add(device, reading),
            ...(deps.modbusTimeoutMs ? { requestTimeoutMs: deps.modbusTimeoutMs } : {}),
            ...(log ? { log: log.child({ part: 'poller', deviceId: device.deviceId }) } : {}),
          }),
        );
      }
      log?.info({ devices: config.devices.length, server: config.server.url }, 'agent started');
    },
    stop(options = {}) {
      stopping ??= (async () => {
        await Promise.all(pollers.splice(0).map((p) => p.stop()));
        flush();
        await appending;
        await relay?.stop();
        await stream?.stop(options.drainMs ?? 0);
        await spool?.close();
        log?.info(counters, 'agent stopped');
      })();
      return stopping;
    },
    stats: () => ({
      ...counters,
      readingsBuffered: buffered(),
      spool: spool?.stats() ?? { segments: 0, bytes: 0, pendingBatches: 0, droppedBatches: 0, truncatedRecords: 0, nextSequence: 0n },
      stream: stream?.stats() ?? emptyStreamStats(),
    }),
  };
}

/** Reads the PEM files of `server.tls`; a missing one is a config error naming its field. */
async function readTls(files: NonNullable<SiteConfig['server']['tls']>): Promise<AgentTls> {
  const read = async (key: 'caFile' | 'certFile' | 'keyFile') => {
    const file = files[key];
    if (file === undefined) return undefined;
    try {
      return await readFile(file);
    } catch (err) {
      throw new SiteConfigError(`server.tls.${key}`, `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}): ${file}`);
    }
  };
  const [ca, cert, key] = await Promise.all([read('caFile'), read('certFile'), read('keyFile')]);
  return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
}
