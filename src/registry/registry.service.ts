import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { create, fromBinary, toBinary, toJsonString } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import { principalOf, stableIdentity } from '../rpc/principal.ts';
import type { SiteAccess } from '../rpc/site-access.ts';
import {
  BatchUpsertDevicesResponseSchema,
  DeviceRegistryService,
  DeviceSchema,
  UpsertOutcome as PbUpsertOutcome,
  type BatchUpsertDevicesResponse,
  DeviceType as PbDeviceType,
  RegisterProfile as PbRegisterProfile,
  type BessSpec as PbBessSpec,
  type Device as PbDevice,
  type ModbusAccess as PbModbusAccess,
} from '../../gen/powerplane/v1/devices_pb.ts';
import { InvalidArgumentError, PermissionDeniedError } from '../errors.ts';
import {
  DEVICE_DEFAULTS,
  type BessSpec,
  type Device,
  type DeviceInput,
  type DeviceType,
  type JsonObject,
  type ModbusAccess,
  type RegisterProfileName,
} from './registered-device.ts';
import type { Registry } from './registry.ts';
import { checkBatchSize, type BatchUpsertResult, type UpsertedDevice, type UpsertOutcome } from './registry-batch.ts';
import { DEFAULT_PAGE_BYTES } from '../page-token.ts';
import { encodingOf, responseSizer } from '../response-size.ts';
import type { ResponseCodec } from '../storage/idempotency.ts';

/** Options of {@link createRegistryService}. */
export interface RegistryServiceOptions {
  /** Most bytes of devices on one ListDevices page; default `DEFAULT_PAGE_BYTES` (1 MiB). */
  readonly pageBytes?: number;
  /**
   * The server's largest message, bytes (`POWERPLANE_MAX_MESSAGE_BYTES`); default 4 MiB. A
   * batch whose response would be larger is refused before it is written.
   */
  readonly maxMessageBytes?: number;
}

/** The DeviceRegistryService RPCs: decode, call the registry, encode. */
export function createRegistryService(
  registry: Registry,
  access: SiteAccess,
  options: RegistryServiceOptions = {},
): ServiceImpl<typeof DeviceRegistryService> {
  const pageBytes = options.pageBytes ?? DEFAULT_PAGE_BYTES;
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const deviceCodec = {
    encode: (device: Device) => toBinary(DeviceSchema, toPbDevice(device)),
    decode: (bytes: Uint8Array) => fromPbDevice(fromBinary(DeviceSchema, bytes)),
  };
  return {
    async createDevice(req, ctx) {
      fleetWide(ctx, 'CreateDevice');
      const device = await registry.createDevice(toDeviceInput(req.device), req.requestId, stableIdentity(principalOf(ctx)), deviceCodec);
      return { device: toPbDevice(device) };
    },
    async getDevice(req, ctx) {
      return { device: toPbDevice(await registry.getDevice(req.id, access.scope(ctx))) };
    },
    async listDevices(req, ctx) {
      const type = req.type === PbDeviceType.UNSPECIFIED ? undefined : deviceTypeFromPb(req.type, 'type');
      const site = access.listSite(ctx, req.site, 'site');
      const filter = {
        ...(site !== undefined ? { site } : {}),
        ...(type ? { type } : {}),
        ...(req.active !== undefined ? { active: req.active } : {}),
      };
      const size = responseSizer(ctx, DeviceSchema);
      // Each device is made a message once: the one sized is the one sent.
      const messages = new Map<Device, PbDevice>();
      const messageOf = (d: Device) => {
        let message = messages.get(d);
        if (!message) messages.set(d, (message = toPbDevice(d)));
        return message;
      };
      const page = await registry.listDevices(filter, req.pageSize, req.pageToken, {
        bytes: pageBytes,
        sizeOf: (d) => size(messageOf(d)),
      });
      return { devices: page.devices.map(messageOf), nextPageToken: page.nextPageToken };
    },
    async updateDevice(req, ctx) {
      if (!req.device) throw new InvalidArgumentError('device', undefined, 'is required');
      const mask = req.updateMask?.paths ?? [];
      fleetWide(ctx, 'UpdateDevice');
      const patch = toDeviceFields(req.device, 'device');
      const device = await registry.updateDevice(req.device.id, { ...patch, active: req.device.active }, mask);
      return { device: toPbDevice(device) };
    },
    async batchUpsertDevices(req, ctx) {
      fleetWide(ctx, 'BatchUpsertDevices');
      checkBatchSize(req.devices.length);
      const inputs = req.devices.map((device, i) => toDeviceInput(device, `devices[${i}]`));
      const responses = batchResponses(ctx, maxMessageBytes);
      const result = await registry.batchUpsertDevices(inputs, {
        requestId: req.requestId,
        owner: stableIdentity(principalOf(ctx)),
        validateOnly: req.validateOnly,
        codec: responses.codec,
        check: responses.check,
      });
      return responses.response(result);
    },
    async deactivateDevice(req, ctx) {
      return { device: toPbDevice(await registry.deactivateDevice(req.id, access.scope(ctx))) };
    },
  };
}

/**
 * Creating or changing a device needs a caller not bound to sites: a device names a Modbus
 * address the control loop will write to, and an address can reach any site's controller
 * (or any host the control plane can reach). Deactivating stays open to a site's own callers.
 */
function fleetWide(ctx: HandlerContext, method: string): void {
  const caller = principalOf(ctx);
  if (caller.sites !== '*')
    throw new PermissionDeniedError(
      `${method} needs a caller not bound to sites, since a device's Modbus address is not confined to one site (${caller.id} is bound)`,
    );
}

/** Maps an API device to the domain input, naming fields under `prefix`; the type is required. */
function toDeviceInput(pb: PbDevice | undefined, prefix = 'device'): DeviceInput {
  if (!pb) throw new InvalidArgumentError(prefix, undefined, 'is required');
  return { ...toDeviceFields(pb, prefix), type: deviceTypeFromPb(pb.type, `${prefix}.type`) };
}

/** Maps an API device's mutable fields, applying the API's documented zero-value defaults. */
function toDeviceFields(pb: PbDevice, prefix: string): Omit<DeviceInput, 'type'> {
  return {
    name: pb.name,
    site: pb.site,
    metadata: (pb.metadata ?? {}) as JsonObject,
    ...(pb.spec.case === 'bess' ? { bess: bessFromPb(pb.spec.value, `${prefix}.bess`) } : {}),
    ...(pb.spec.case === 'meter' ? { meter: { modbus: modbusFromPb(pb.spec.value.modbus, `${prefix}.meter.modbus`) } } : {}),
  };
}

function deviceTypeFromPb(type: PbDeviceType, field: string): DeviceType {
  switch (type) {
    case PbDeviceType.BESS:
      return 'bess';
    case PbDeviceType.METER:
      return 'meter';
    case PbDeviceType.UNSPECIFIED:
      throw new InvalidArgumentError(field, 'DEVICE_TYPE_UNSPECIFIED', 'must be DEVICE_TYPE_BESS or DEVICE_TYPE_METER');
    default:
      throw new InvalidArgumentError(field, type, 'is not a known device type');
  }
}

function bessFromPb(pb: PbBessSpec, prefix: string): BessSpec {
  const maxSoe = pb.maxSoePercent === 0 && pb.minSoePercent === 0 ? DEVICE_DEFAULTS.maxSoePercent : pb.maxSoePercent;
  return {
    ratedChargePowerKw: pb.ratedChargePowerKw,
    ratedDischargePowerKw: pb.ratedDischargePowerKw,
    capacityKwh: pb.capacityKwh,
    minSoePercent: pb.minSoePercent,
    maxSoePercent: maxSoe,
    inverterBlockCount: pb.inverterBlockCount || DEVICE_DEFAULTS.inverterBlockCount,
    rampRateKwPerS: pb.rampRateKwPerS,
    reversionTimeoutS: pb.reversionTimeoutS || DEVICE_DEFAULTS.reversionTimeoutS,
    modbus: modbusFromPb(pb.modbus, `${prefix}.modbus`),
  };
}

function modbusFromPb(pb: PbModbusAccess | undefined, prefix: string): ModbusAccess {
  if (!pb?.endpoint) throw new InvalidArgumentError(`${prefix}.endpoint`, undefined, 'is required');
  const registerMap = pb.registerMap && Object.keys(pb.registerMap).length > 0 ? (pb.registerMap as JsonObject) : undefined;
  return {
    host: pb.endpoint.host,
    port: pb.endpoint.port || DEVICE_DEFAULTS.modbusPort,
    unitId: pb.endpoint.unitId || DEVICE_DEFAULTS.unitId,
    registerProfile: registerProfileFromPb(pb.registerProfile, `${prefix}.register_profile`),
    pollingIntervalMs: pb.pollingIntervalMs || DEVICE_DEFAULTS.pollingIntervalMs,
    ...(registerMap ? { registerMap } : {}),
    ...(pb.relay ? { relay: true } : {}),
  };
}

const PROFILE_NAMES: Record<PbRegisterProfile, RegisterProfileName | undefined> = {
  [PbRegisterProfile.UNSPECIFIED]: undefined,
  [PbRegisterProfile.SUNSPEC]: 'sunspec',
  [PbRegisterProfile.TESLA_POWERPACK]: 'tesla-powerpack',
  [PbRegisterProfile.CUSTOM]: 'custom',
};

function registerProfileFromPb(profile: PbRegisterProfile, field: string): RegisterProfileName {
  const name = PROFILE_NAMES[profile];
  if (!name) throw new InvalidArgumentError(field, PbRegisterProfile[profile] ?? profile, 'must be SUNSPEC | TESLA_POWERPACK | CUSTOM');
  return name;
}

function registerProfileToPb(name: RegisterProfileName): PbRegisterProfile {
  const entry = Object.entries(PROFILE_NAMES).find(([, value]) => value === name);
  return entry ? (Number(entry[0]) as PbRegisterProfile) : PbRegisterProfile.UNSPECIFIED;
}

function modbusToPb(modbus: ModbusAccess) {
  return {
    endpoint: { host: modbus.host, port: modbus.port, unitId: modbus.unitId },
    registerProfile: registerProfileToPb(modbus.registerProfile),
    ...(modbus.registerMap ? { registerMap: modbus.registerMap } : {}),
    pollingIntervalMs: modbus.pollingIntervalMs,
    relay: modbus.relay === true,
  };
}

/** Maps a domain device to its API message; one without `createdAt` (not yet created) has no `create_time`. */
export function toPbDevice(device: UpsertedDevice): PbDevice {
  const spec = device.bess
    ? { case: 'bess' as const, value: { ...device.bess, modbus: modbusToPb(device.bess.modbus) } }
    : device.meter
      ? { case: 'meter' as const, value: { modbus: modbusToPb(device.meter.modbus) } }
      : { case: undefined };
  return create(DeviceSchema, {
    id: device.id,
    name: device.name,
    type: device.type === 'bess' ? PbDeviceType.BESS : device.type === 'meter' ? PbDeviceType.METER : PbDeviceType.UNSPECIFIED,
    site: device.site,
    active: device.active,
    ...(device.createdAt ? { createTime: timestampFromDate(device.createdAt) } : {}),
    spec,
    metadata: device.metadata,
  });
}

function fromPbDevice(pb: PbDevice): Device {
  const input = toDeviceInput(pb);
  return {
    ...input,
    id: pb.id,
    active: pb.active,
    createdAt: pb.createTime ? new Date(Number(pb.createTime.seconds) * 1000 + Math.floor(pb.createTime.nanos / 1e6)) : new Date(0),
  };
}

/** The server's default message limit, as `POWERPLANE_MAX_MESSAGE_BYTES` defaults. */
const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

const OUTCOMES: Record<UpsertOutcome, PbUpsertOutcome> = {
  created: PbUpsertOutcome.CREATED,
  updated: PbUpsertOutcome.UPDATED,
  unchanged: PbUpsertOutcome.UNCHANGED,
};

function toPbBatchResponse(result: BatchUpsertResult): BatchUpsertDevicesResponse {
  return create(BatchUpsertDevicesResponseSchema, {
    results: result.results.map(({ device, outcome }) => ({ device: toPbDevice(device), outcome: OUTCOMES[outcome] })),
    createdCount: result.created,
    updatedCount: result.updated,
    unchangedCount: result.unchanged,
    validateOnly: result.validateOnly,
  });
}

function fromPbBatchResponse(pb: BatchUpsertDevicesResponse): BatchUpsertResult {
  const outcomes = Object.entries(OUTCOMES) as [UpsertOutcome, PbUpsertOutcome][];
  return {
    results: pb.results.map((r) => ({ device: fromPbDevice(r.device!), outcome: outcomes.find(([, value]) => value === r.outcome)![0] })),
    created: pb.createdCount,
    updated: pb.updatedCount,
    unchanged: pb.unchangedCount,
    validateOnly: pb.validateOnly,
  };
}

/**
 * The response to one BatchUpsertDevices call, encoded as few times as it can be (10,000
 * devices take protobuf-es about a second to encode): `check` builds and measures it just
 * before the batch commits, refusing one over the message limit (the caller must never
 * be refused the answer to a batch that was written); `codec` keeps the bytes measured
 * for retries, deflated (idempotency keys are kept for good, and a fleet's devices repeat
 * most of their bytes); `response` returns the message checked.
 */
function batchResponses(ctx: HandlerContext, maxMessageBytes: number) {
  const schema = BatchUpsertDevicesResponseSchema;
  const encoding = encodingOf(ctx);
  let checked: { result: BatchUpsertResult; response: BatchUpsertDevicesResponse; binary?: Uint8Array } | undefined;
  const codec: ResponseCodec<BatchUpsertResult> = {
    encode(result) {
      const binary = checked?.result === result ? (checked.binary ?? toBinary(schema, checked.response)) : undefined;
      return deflateRawSync(binary ?? toBinary(schema, toPbBatchResponse(result)));
    },
    decode: (bytes) => fromPbBatchResponse(fromBinary(schema, inflateRawSync(bytes))),
  };
  return {
    codec,
    check(result: BatchUpsertResult): void {
      const response = toPbBatchResponse(result);
      const binary = encoding === 'json' ? undefined : toBinary(schema, response);
      const bytes = Math.max(binary?.length ?? 0, encoding === 'binary' ? 0 : Buffer.byteLength(toJsonString(schema, response)));
      if (bytes > maxMessageBytes) {
        throw new ConnectError(
          `devices would take ${bytes} bytes in the response, more than the server's message limit of ${maxMessageBytes} bytes ` +
            `(POWERPLANE_MAX_MESSAGE_BYTES) - nothing was written - send fewer devices per call (got ${result.results.length} devices)`,
          Code.ResourceExhausted,
        );
      }
      checked = { result, response, ...(binary ? { binary } : {}) };
    },
    response: (result: BatchUpsertResult) => (checked?.result === result ? checked.response : toPbBatchResponse(result)),
  };
}
