import net from 'node:net';
import { encodeRaw, notImplementedRegisters } from '../../src/modbus/codec.ts';
import { getSunSpecModel } from '../../src/modbus/sunspec-models.ts';
import type { SetpointEvent } from '../../src/modbus/types.ts';
import { ModbusServerException } from '../../src/simulator/modbus-tcp-server.ts';
import { waitFor as waitUntil } from '../support/wait.ts';

/** Polls `predicate` every 10 ms until it holds or `timeoutMs` passes (the shared bounded wait). */
export function waitFor(predicate: () => boolean, timeoutMs = 3000): Promise<void> {
  return waitUntil('the condition', predicate, timeoutMs, 10);
}

/** Collects setpoint events and finds them. */
export function eventLog(): {
  events: SetpointEvent[];
  onEvent: (e: SetpointEvent) => void;
  has: (seq: number, phase: SetpointEvent['phase']) => boolean;
  final: (seq: number) => SetpointEvent | undefined;
} {
  const events: SetpointEvent[] = [];
  return {
    events,
    onEvent: (e) => {
      events.push(e);
    },
    has: (seq, phase) => events.some((e) => e.seq === seq && e.phase === phase),
    final: (seq) =>
      events
        .filter((e) => e.seq === seq && (e.phase === 'verified' || e.phase === 'dropped' || (e.phase === 'failed' && !e.willRetry)))
        .at(-1),
  };
}

/** One Modbus TCP request seen by a {@link ModbusProxy}. */
export interface ProxiedRequest {
  functionCode: number;
  address: number;
  /** Registers written (functions 6 and 16); empty for reads. */
  values: number[];
}

/**
 * What a {@link ModbusProxy} does with one request: pass it on; hold it (and every later
 * request of its connection, to keep their order) until {@link ModbusProxy.release}; or pass
 * it on and swallow the device's answer, so the device acts but the client times out.
 */
export type ProxyAction = 'forward' | 'hold' | 'lose-answer';

/** A Modbus-frame-aware TCP proxy on 127.0.0.1 in front of one Modbus TCP server. */
export interface ModbusProxy {
  readonly port: number;
  /** Requests held now, over every connection. */
  readonly held: number;
  /** Sends every held request on, in order. */
  release(): void;
  /** Closes the listener and every connection. Idempotent. */
  close(): Promise<void>;
}

/** Splits whole MBAP frames (7-byte header + PDU) off the front of `buffer`. */
function takeFrames(buffer: Buffer): { frames: Buffer[]; rest: Buffer } {
  const frames: Buffer[] = [];
  let rest = buffer;
  while (rest.length >= 7 && rest.length >= 6 + rest.readUInt16BE(4)) {
    const size = 6 + rest.readUInt16BE(4);
    frames.push(rest.subarray(0, size));
    rest = rest.subarray(size);
  }
  return { frames, rest };
}

function parseRequest(frame: Buffer): ProxiedRequest {
  const functionCode = frame[7] ?? 0;
  const address = frame.length >= 10 ? frame.readUInt16BE(8) : 0;
  const values: number[] = [];
  if (functionCode === 6 && frame.length >= 12) values.push(frame.readUInt16BE(10));
  if (functionCode === 16) for (let at = 13; at + 1 < frame.length; at += 2) values.push(frame.readUInt16BE(at));
  return { functionCode, address, values };
}

/**
 * Starts a proxy on 127.0.0.1 port 0 to the Modbus TCP server at `target`; `decide` is asked
 * about every request (one upstream connection per client connection).
 */
export async function startModbusProxy(
  target: { host: string; port: number },
  decide: (r: ProxiedRequest) => ProxyAction,
): Promise<ModbusProxy> {
  const links = new Set<{ client: net.Socket; upstream: net.Socket; queue: Buffer[] }>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    const link = { client, upstream, queue: [] as Buffer[] };
    links.add(link);
    const lost = new Set<number>();
    let fromClient: Buffer = Buffer.alloc(0);
    let fromUpstream: Buffer = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      const { frames, rest } = takeFrames(Buffer.concat([fromClient, chunk]));
      fromClient = rest;
      for (const frame of frames) {
        const action = decide(parseRequest(frame));
        if (action === 'lose-answer') lost.add(frame.readUInt16BE(0));
        if (action === 'hold' || link.queue.length > 0) link.queue.push(frame);
        else upstream.write(frame);
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      const { frames, rest } = takeFrames(Buffer.concat([fromUpstream, chunk]));
      fromUpstream = rest;
      for (const frame of frames) if (!lost.delete(frame.readUInt16BE(0))) client.write(frame);
    });
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      links.delete(link);
    };
    for (const s of [client, upstream]) {
      s.on('error', drop);
      s.on('close', drop);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  let closing: Promise<void> | undefined;
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    get held() {
      return [...links].reduce((n, l) => n + l.queue.length, 0);
    },
    release: () => {
      for (const l of links) for (const frame of l.queue.splice(0)) l.upstream.write(frame);
    },
    close: () => {
      closing ??= new Promise<void>((done) => {
        server.close(() => done());
        for (const l of links) {
          l.client.destroy();
          l.upstream.destroy();
        }
      });
      return closing;
    },
  };
}

/**
 * A hand-built SunSpec register image at `base` (the `SunS` marker, then `models` in order,
 * then the end marker), every point starting at its not-implemented value; `set` writes a
 * raw (unscaled) value by model and point name.
 */
export function sunSpecImage(
  base: number,
  models: readonly number[],
): { read(address: number, count: number): number[]; set(modelId: number, point: string, raw: number | string): void } {
  const regs = [0x5375, 0x6e53];
  const starts = new Map<number, number>();
  for (const id of models) {
    const m = getSunSpecModel(id);
    starts.set(id, regs.length);
    regs.push(id, m.length);
    for (const p of m.points.slice(2)) regs.push(...notImplementedRegisters(p.type, { length: p.size }));
  }
  regs.push(0xffff, 0);
  return {
    read: (address, count) => {
      const from = address - base;
      if (from < 0 || from + count > regs.length) throw new ModbusServerException(2);
      return regs.slice(from, from + count);
    },
    set: (modelId, name, raw) => {
      const p = getSunSpecModel(modelId).byName.get(name);
      const start = starts.get(modelId);
      if (!p || start === undefined) throw new Error(`image has no ${modelId}.${name}`);
      regs.splice(start + p.offset, p.size, ...encodeRaw(raw, p.type, { length: p.size }));
    },
  };
}
