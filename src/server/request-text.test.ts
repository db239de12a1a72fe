import { create, ScalarType, type DescMessage } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { TokenService } from '../../gen/powerplane/v1/auth_pb.ts';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import { DispatchService } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { FleetService } from '../../gen/powerplane/v1/fleet_pb.ts';
import { ReadingsService } from '../../gen/powerplane/v1/readings_pb.ts';
import { DatumReadingSchema } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { checkRequestText, TEXT_LIMITS } from './request-text.ts';

const JSON_TYPES = new Set(['google.protobuf.Struct', 'google.protobuf.Value', 'google.protobuf.ListValue']);

/** Full names of the string fields reachable from `desc`, Struct contents aside. */
function stringFields(desc: DescMessage, seen = new Set<string>()): string[] {
  if (seen.has(desc.typeName) || JSON_TYPES.has(desc.typeName)) return [];
  seen.add(desc.typeName);
  return desc.fields.flatMap((field) => {
    const name = `${desc.typeName}.${field.name}`;
    if ((field.fieldKind === 'scalar' || field.fieldKind === 'list') && field.scalar === ScalarType.STRING) return [name];
    if (field.fieldKind === 'map') return field.mapKey === ScalarType.STRING ? [name] : [];
    if (field.fieldKind === 'message' || (field.fieldKind === 'list' && field.listKind === 'message'))
      return stringFields(field.message, seen);
    return [];
  });
}

describe('the text limits of request fields', () => {
  it('name every string field of every request of the services checked as a whole', () => {
    const fields = new Set(
      [TokenService, DeviceRegistryService, DispatchService, ReadingsService, FleetService].flatMap((s) =>
        s.methods.flatMap((m) => stringFields(m.input)),
      ),
    );
    expect([...fields].sort()).toEqual(Object.keys(TEXT_LIMITS).sort());
  });

  it('check the keys and values of a map field, naming the map or the entry', () => {
    expect(() => checkRequestText(DatumReadingSchema, create(DatumReadingSchema, { status: { 'a\u0000': 'x' } }))).toThrow(
      /^status must not contain a NUL character/,
    );
    expect(() => checkRequestText(DatumReadingSchema, create(DatumReadingSchema, { status: { alarm: 'x\u0000' } }))).toThrow(
      /^status\.alarm must not contain a NUL character/,
    );
    expect(() =>
      checkRequestText(DatumReadingSchema, create(DatumReadingSchema, { sourceId: 's', status: { alarm: 'hot' } })),
    ).not.toThrow();
  });
});
