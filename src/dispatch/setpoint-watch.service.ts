/**
 * WatchSetpoints in binary (part of the RPC boundary, with `dispatch.service.ts`). A burst
 * of a site's setpoint events is thousands of messages, and protobuf-es's reflective
 * `toBinary` took as long per event as the control loop's plan took per battery, on the
 * event loop the setpoint writers share. So binary calls are served through a *wire view*
 * of DispatchService: the same descriptor with `WatchSetpointsResponse.events` as
 * `repeated bytes` (the same on the wire), each event encoded by {@link encodeSetpointEvent}.
 * JSON calls, and every other method, keep the generated schema; clients and reflection see
 * only that.
 */
import { clone, createFileRegistry, type DescService } from '@bufbuild/protobuf';
import type { GenMessage, GenService } from '@bufbuild/protobuf/codegenv2';
import { FieldDescriptorProto_Type, FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import type { ConnectRouter, HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { byFormat } from '../rpc/handler-by-format.ts';
import {
  DispatchService,
  file_powerplane_v1_dispatch,
  type SetpointEvent,
  type WatchSetpointsRequest,
  type WatchSetpointsRequestSchema,
} from '../../gen/powerplane/v1/dispatch_pb.ts';

/** WatchSetpointsResponse in the wire view: each event already encoded. */
export interface WireWatchSetpointsResponse {
  readonly $typeName: 'powerplane.v1.WatchSetpointsResponse';
  events: Uint8Array[];
}

type WireMethods = {
  watchSetpoints: {
    methodKind: 'server_streaming';
    input: typeof WatchSetpointsRequestSchema;
    output: GenMessage<WireWatchSetpointsResponse>;
  };
};

/** The wire view of DispatchService, of which only WatchSetpoints is served. */
export const DispatchWireService = buildWireView() as GenService<WireMethods>;

/**
 * Registers DispatchService on `router`: every method as generated, and WatchSetpoints
 * twice by Content-Type, JSON requests to the generated handler and the rest (gRPC, gRPC-Web,
 * Connect with protobuf) to the wire view, which encodes the events the generated handler
 * yields. Both handlers are built by the router, so they carry its interceptors and limits.
 */
export function registerDispatchService(router: ConnectRouter, impl: ServiceImpl<typeof DispatchService>): void {
  const first = router.handlers.length;
  router.service(DispatchService, impl);
  const watch = router.handlers.findIndex((h, i) => i >= first && h.method.name === 'WatchSetpoints');
  const wireStart = router.handlers.length;
  router.service(DispatchWireService, {
    async *watchSetpoints(req: WatchSetpointsRequest, context: HandlerContext) {
      for await (const res of impl.watchSetpoints(req, context)) {
        yield { events: (res.events as SetpointEvent[]).map(encodeSetpointEvent) };
      }
    },
  } as ServiceImpl<GenService<WireMethods>>);
  const wire = router.handlers.splice(wireStart).find((h) => h.method.name === 'WatchSetpoints');
  if (watch < 0 || !wire) throw new Error('DispatchService has no WatchSetpoints handler');
  router.handlers[watch] = byFormat(wire, router.handlers[watch]!);
}

/** Clones dispatch.proto's descriptor with `WatchSetpointsResponse.events` as `repeated bytes` and builds its DispatchService. */
function buildWireView(): DescService {
  const proto = clone(FileDescriptorProtoSchema, file_powerplane_v1_dispatch.proto);
  const field = proto.messageType.find((m) => m.name === 'WatchSetpointsResponse')?.field.find((f) => f.name === 'events');
  if (!field) throw new Error('dispatch.proto has no WatchSetpointsResponse.events');
  field.type = FieldDescriptorProto_Type.BYTES;
  field.typeName = '';
  const imports = file_powerplane_v1_dispatch.dependencies;
  const registry = createFileRegistry(proto, (name) => imports.find((file) => file.proto.name === name));
  const service = registry.getService(DispatchService.typeName);
  if (!service) throw new Error('the wire view has no DispatchService');
  return service;
}

/** Wire tags (field number << 3 | wire type) of dispatch.proto's SetpointEvent, and of Timestamp and Duration. */
const TAG = {
  setpointId: 0x0a,
  deviceId: 0x12,
  site: 0x1a,
  phase: 0x20,
  targetPowerKw: 0x29,
  commandSource: 0x30,
  instructionId: 0x3a,
  time: 0x42,
  elapsed: 0x4a,
  reason: 0x52,
  seconds: 0x08,
  nanos: 0x10,
} as const;

/**
 * One SetpointEvent's bytes, as protobuf-es's `toBinary` writes them (proto3: a field at
 * its default is left out, -0 kept; `setpoint-watch.service.test.ts` compares the two on random
 * events), in a fraction of its time.
 */
export function encodeSetpointEvent(e: SetpointEvent): Uint8Array {
  const time = e.time ? secondsNanosLength(e.time.seconds, e.time.nanos) : -1;
  const elapsed = e.elapsed ? secondsNanosLength(e.elapsed.seconds, e.elapsed.nanos) : -1;
  const size =
    stringLength(e.setpointId) +
    stringLength(e.deviceId) +
    stringLength(e.site) +
    varintFieldLength(e.phase) +
    (!Object.is(e.targetPowerKw, 0) ? 9 : 0) +
    varintFieldLength(e.commandSource) +
    stringLength(e.instructionId) +
    (time >= 0 ? 1 + varintLength(time) + time : 0) +
    (elapsed >= 0 ? 1 + varintLength(elapsed) + elapsed : 0) +
    stringLength(e.reason);
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  const varint = (value: number | bigint) => {
    value = small(value);
    if (typeof value === 'bigint' || value < 0) {
      // int64 values, and negative ones of any width, in two's complement over 64 bits.
      let v = BigInt.asUintN(64, BigInt(value));
      while (v > 0x7fn) {
        out[at++] = Number(v & 0x7fn) | 0x80;
        v >>= 7n;
      }
      out[at++] = Number(v);
      return;
    }
    while (value > 0x7f) {
      out[at++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    out[at++] = value;
  };
  const string = (tag: number, value: string) => {
    if (value === '') return;
    out[at++] = tag;
    varint(Buffer.byteLength(value));
    at += out.write(value, at, 'utf8');
  };
  const enumeration = (tag: number, value: number) => {
    if (value === 0) return;
    out[at++] = tag;
    varint(value);
  };
  const secondsNanos = (tag: number, length: number, m: { seconds: bigint; nanos: number }) => {
    out[at++] = tag;
    varint(length);
    if (m.seconds !== 0n) {
      out[at++] = TAG.seconds;
      varint(m.seconds);
    }
    if (m.nanos !== 0) {
      out[at++] = TAG.nanos;
      varint(m.nanos);
    }
  };
  string(TAG.setpointId, e.setpointId);
  string(TAG.deviceId, e.deviceId);
  string(TAG.site, e.site);
  enumeration(TAG.phase, e.phase);
  if (!Object.is(e.targetPowerKw, 0)) {
    out[at++] = TAG.targetPowerKw;
    out.writeDoubleLE(e.targetPowerKw, at);
    at += 8;
  }
  enumeration(TAG.commandSource, e.commandSource);
  string(TAG.instructionId, e.instructionId);
  if (e.time) secondsNanos(TAG.time, time, e.time);
  if (e.elapsed) secondsNanos(TAG.elapsed, elapsed, e.elapsed);
  string(TAG.reason, e.reason);
  return out;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A bigint within 0..2^53 as a number, so the common case skips bigint arithmetic. */
function small(value: number | bigint): number | bigint {
  if (typeof value === 'number') return value > Number.MAX_SAFE_INTEGER ? BigInt(value) : value;
  return value >= 0n && value <= MAX_SAFE ? Number(value) : value;
}

function varintLength(value: number | bigint): number {
  value = small(value);
  if (typeof value === 'bigint' || value < 0) {
    let v = BigInt.asUintN(64, BigInt(value));
    let length = 1;
    while (v > 0x7fn) {
      v >>= 7n;
      length++;
    }
    return length;
  }
  let length = 1;
  while (value > 0x7f) {
    value = Math.floor(value / 0x80);
    length++;
  }
  return length;
}

function varintFieldLength(value: number): number {
  return value === 0 ? 0 : 1 + varintLength(value);
}

function stringLength(value: string): number {
  if (value === '') return 0;
  const bytes = Buffer.byteLength(value);
  return 1 + varintLength(bytes) + bytes;
}

/** The body length of a Timestamp or Duration (its seconds and nanos, each left out at 0). */
function secondsNanosLength(seconds: bigint, nanos: number): number {
  return (seconds !== 0n ? 1 + varintLength(seconds) : 0) + (nanos !== 0 ? 1 + varintLength(nanos) : 0);
}
