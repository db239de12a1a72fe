import { ScalarType, type DescField, type DescMessage } from '@bufbuild/protobuf';
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import { TelemetryService } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { InvalidArgumentError } from '../errors.ts';
import { checkJsonText, checkText } from '../text.ts';

/** Longest id field (UUIDs are 36 characters; anything longer is refused before a lookup). */
const ID = 64;
/** Longest site, device or token name, as the API documents (1–200 characters). */
const NAME = 200;
/** Longest `request_id`, as the API documents. */
const REQUEST_ID = 100;
/** Longest free-text reason (cancellations, overrides, deactivations). */
const REASON = 1_000;
/** Longest page token: a registry token holds a site and a device name in base64url JSON. */
const PAGE_TOKEN = 4_096;
/** Longest scope, market data type or field-mask path: short names from fixed sets. */
const WORD = 64;

/**
 * The longest value of every string field a request of the served services may hold, by
 * the field's full protobuf name. TelemetryService is absent: its readings are checked one
 * by one in the telemetry domain, so one bad reading is rejected in the ack and the rest
 * of its batch is stored. A test walks every request message and fails on a string field
 * missing here; one that is missing anyway gets {@link DEFAULT_LIMIT}.
 */
export const TEXT_LIMITS: Readonly<Record<string, number>> = {
  'powerplane.v1.CreateTokenRequest.name': NAME,
  'powerplane.v1.CreateTokenRequest.scopes': WORD,
  'powerplane.v1.CreateTokenRequest.sites': NAME,
  'powerplane.v1.ListTokensRequest.page_token': PAGE_TOKEN,
  'powerplane.v1.RevokeTokenRequest.id': ID,
  'powerplane.v1.Device.id': ID,
  'powerplane.v1.Device.name': NAME,
  'powerplane.v1.Device.site': NAME,
  'powerplane.v1.ModbusEndpoint.host': 253,
  'powerplane.v1.CreateDeviceRequest.request_id': REQUEST_ID,
  'powerplane.v1.GetDeviceRequest.id': ID,
  'powerplane.v1.ListDevicesRequest.site': NAME,
  'powerplane.v1.ListDevicesRequest.page_token': PAGE_TOKEN,
  'google.protobuf.FieldMask.paths': WORD,
  'powerplane.v1.DeactivateDeviceRequest.id': ID,
  'powerplane.v1.DeactivateDeviceRequest.reason': REASON,
  'powerplane.v1.BatchUpsertDevicesRequest.request_id': REQUEST_ID,
  'powerplane.v1.ListBatterySeriesRequest.site': NAME,
  'powerplane.v1.ListBatterySeriesRequest.device_ids': ID,
  'powerplane.v1.GetFleetSummaryRequest.sites': NAME,
  'powerplane.v1.MarketDataPoint.type': WORD,
  'powerplane.v1.ListMarketDataRequest.types': WORD,
  'powerplane.v1.ListMarketDataRequest.page_token': PAGE_TOKEN,
  'powerplane.v1.SubmitDispatchRequest.request_id': REQUEST_ID,
  'powerplane.v1.SubmitDispatchRequest.site': NAME,
  'powerplane.v1.SubmitDispatchRequest.device_id': ID,
  'powerplane.v1.CancelDispatchRequest.id': ID,
  'powerplane.v1.CancelDispatchRequest.reason': REASON,
  'powerplane.v1.GetDispatchRequest.id': ID,
  'powerplane.v1.ListDispatchesRequest.site': NAME,
  'powerplane.v1.ListDispatchesRequest.device_id': ID,
  'powerplane.v1.ListDispatchesRequest.page_token': PAGE_TOKEN,
  'powerplane.v1.SetControlModeRequest.device_id': ID,
  'powerplane.v1.SetControlModeRequest.reason': REASON,
  'powerplane.v1.WatchSetpointsRequest.site': NAME,
  'powerplane.v1.WatchSetpointsRequest.device_id': ID,
  'powerplane.v1.GetControlStateRequest.site': NAME,
  'powerplane.v1.GetControlStateRequest.device_ids': ID,
  'powerplane.v1.SiteConfig.site': NAME,
  'powerplane.v1.GetSiteConfigRequest.site': NAME,
  'powerplane.v1.ListMeterReadingsRequest.device_ids': ID,
  'powerplane.v1.ListMeterReadingsRequest.page_token': PAGE_TOKEN,
  'powerplane.v1.ListBessReadingsRequest.device_ids': ID,
  'powerplane.v1.ListBessReadingsRequest.page_token': PAGE_TOKEN,
  'powerplane.v1.GetLatestBessStateRequest.device_ids': ID,
  'powerplane.v1.GetLatestBessStateRequest.site': NAME,
  'powerplane.v1.ListMeterAggregatesRequest.device_ids': ID,
  'powerplane.v1.ListMeterAggregatesRequest.page_token': PAGE_TOKEN,
  'powerplane.v1.ListSettlementPeriodsRequest.device_ids': ID,
  'powerplane.v1.ListDatumReadingsRequest.device_id': ID,
  'powerplane.v1.ListDatumReadingsRequest.source_id': NAME,
  'powerplane.v1.ListDatumReadingsRequest.page_token': PAGE_TOKEN,
};

/** Limit of a string field missing from {@link TEXT_LIMITS}. */
export const DEFAULT_LIMIT = NAME;

/**
 * Services whose requests this check leaves alone: TelemetryService checks its readings
 * one by one (see {@link TEXT_LIMITS}); health and reflection (not `powerplane.*`) store
 * nothing and follow protocols defined elsewhere.
 */
function isChecked(service: string): boolean {
  return service.startsWith('powerplane.') && service !== TelemetryService.typeName;
}

/** The JSON-valued well-known types: their strings are checked as JSON, their size by their field's own rules. */
const JSON_TYPES: ReadonlySet<string> = new Set(['google.protobuf.Struct', 'google.protobuf.Value', 'google.protobuf.ListValue']);

/**
 * Checks every string of a decoded request of type `schema` with the one text check
 * (`text.ts`): no NUL, no lone surrogate, at most the field's {@link TEXT_LIMITS}
 * characters; strings inside `Struct` fields (keys too) without a length. Throws an
 * {@link InvalidArgumentError} naming the field by its protobuf path, e.g.
 * `device.bess.modbus.endpoint.host`, `points[2].metadata.note`, `update_mask.paths[0]`.
 */
export function checkRequestText(schema: DescMessage, message: object): void {
  checkMessage(schema, message, '');
}

/**
 * Refuses, with INVALID_ARGUMENT naming the field, any request whose text PostgreSQL could
 * not store or that is longer than its field allows ({@link checkRequestText}), before the
 * audit interceptor records it and before a handler reads it. Placed outside the audit and
 * error interceptors, so it answers with a ConnectError itself; streamed requests are
 * checked message by message as the handler reads them.
 */
export function createRequestTextInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (!isChecked(req.service.typeName)) return next(req);
    const schema = req.method.input;
    if (!req.stream) {
      refuseBadText(schema, req.message);
      return next(req);
    }
    const messages = req.message;
    return next({
      ...req,
      message: (async function* () {
        for await (const message of messages) {
          refuseBadText(schema, message);
          yield message;
        }
      })(),
    });
  };
}

function refuseBadText(schema: DescMessage, message: object): void {
  try {
    checkRequestText(schema, message);
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw new ConnectError(err.message, Code.InvalidArgument);
    throw err;
  }
}

function checkMessage(schema: DescMessage, message: object, path: string): void {
  if (JSON_TYPES.has(schema.typeName)) return checkJsonText(path, message);
  const values = message as Record<string, unknown>;
  for (const field of schema.fields) {
    let value: unknown;
    if (field.oneof) {
      const chosen = values[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
      if (chosen?.case !== field.localName) continue;
      value = chosen.value;
    } else {
      value = values[field.localName];
    }
    if (value === undefined || value === null) continue;
    checkField(field, value, path === '' ? field.name : `${path}.${field.name}`);
  }
}

function checkField(field: DescField, value: unknown, name: string): void {
  switch (field.fieldKind) {
    case 'scalar':
      if (field.scalar === ScalarType.STRING) checkText(name, value as string, limitOf(field));
      return;
    case 'list':
      if (field.listKind === 'scalar' && field.scalar === ScalarType.STRING) {
        const limit = limitOf(field);
        for (const [i, item] of (value as string[]).entries()) checkText(`${name}[${i}]`, item, limit);
      } else if (field.listKind === 'message') {
        for (const [i, item] of (value as object[]).entries()) checkMessage(field.message, item, `${name}[${i}]`);
      }
      return;
    case 'map':
      for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
        if (field.mapKey === ScalarType.STRING) checkText(name, key, limitOf(field));
        if (field.mapKind === 'scalar' && field.scalar === ScalarType.STRING) checkText(`${name}.${key}`, item as string, limitOf(field));
        else if (field.mapKind === 'message') checkMessage(field.message, item as object, `${name}.${key}`);
      }
      return;
    case 'message':
      checkMessage(field.message, value as object, name);
      return;
    case 'enum':
      return;
    default: {
      const unknown: never = field;
      return unknown;
    }
  }
}

function limitOf(field: DescField): number {
  return TEXT_LIMITS[`${field.parent.typeName}.${field.name}`] ?? DEFAULT_LIMIT;
}
