/**
 * TelemetryService as the server decodes it (part of the RPC boundary, with
 * `telemetry.service.ts`). Binary requests (gRPC, gRPC-Web, Connect with protobuf) are
 * parsed with a *wire view* of the request messages: the same file descriptor with the
 * `batch` field turned from `ReadingBatch` into `bytes`, which is the same on the wire, so
 * protobuf-es leaves the batch encoded and `wire-decode.ts` reads it straight into the
 * columns ingest validates. JSON requests keep the generated schema (a batch in JSON is a
 * message, not base64). Clients and reflection see the generated schema only.
 */
import { clone, create, createFileRegistry, isFieldSet, type DescService } from '@bufbuild/protobuf';
import type { GenMessage, GenService } from '@bufbuild/protobuf/codegenv2';
import {
  FieldDescriptorProto_Type,
  FieldDescriptorProtoSchema,
  file_google_protobuf_timestamp,
  FileDescriptorProtoSchema,
  OneofDescriptorProtoSchema,
} from '@bufbuild/protobuf/wkt';
import type { ConnectRouter, ServiceImpl } from '@connectrpc/connect';
import { byFormat } from '../rpc/handler-by-format.ts';
import {
  file_powerplane_v1_telemetry,
  TelemetryService,
  type StreamReadingsRequest,
  type StreamReadingsResponseSchema,
  type WriteReadingsRequest,
  type WriteReadingsResponseSchema,
} from '../../gen/powerplane/v1/telemetry_pb.ts';

/** StreamReadingsRequest in the wire view: a batch arrives still encoded. */
export type WireStreamReadingsRequest = Omit<StreamReadingsRequest, 'message'> & {
  message: Exclude<StreamReadingsRequest['message'], { case: 'batch' }> | { case: 'batch'; value: Uint8Array };
};

/** WriteReadingsRequest in the wire view: the batch still encoded (undefined when absent). */
export type WireWriteReadingsRequest = Omit<WriteReadingsRequest, 'batch'> & { batch?: Uint8Array };

type TelemetryMethods<
  Stream extends StreamReadingsRequest | WireStreamReadingsRequest,
  Write extends WriteReadingsRequest | WireWriteReadingsRequest,
> = {
  streamReadings: { methodKind: 'bidi_streaming'; input: GenMessage<Stream>; output: typeof StreamReadingsResponseSchema };
  writeReadings: { methodKind: 'unary'; input: GenMessage<Write>; output: typeof WriteReadingsResponseSchema };
};

/** The wire view of TelemetryService: same names, paths and responses; batches as bytes. */
export const TelemetryWireService = buildWireView() as GenService<TelemetryMethods<WireStreamReadingsRequest, WireWriteReadingsRequest>>;

/**
 * The TelemetryService implementation the server registers: it takes requests of either
 * view (a batch as a decoded message from JSON, as bytes from everything binary).
 */
export type TelemetryServiceImpl = ServiceImpl<
  GenService<TelemetryMethods<StreamReadingsRequest | WireStreamReadingsRequest, WriteReadingsRequest | WireWriteReadingsRequest>>
>;

/**
 * Registers TelemetryService on `router`: requests in a JSON format go to the generated
 * schema, all others to the wire view; one handler per path chooses by Content-Type. Both
 * are built by the router, so they carry its interceptors and limits.
 */
export function registerTelemetryService(router: ConnectRouter, impl: TelemetryServiceImpl): void {
  const first = router.handlers.length;
  router.service(TelemetryService, impl);
  const decoded = router.handlers.splice(first);
  router.service(TelemetryWireService, impl);
  const wire = router.handlers.splice(first);
  for (const binary of wire) {
    const json = decoded.find((h) => h.requestPath === binary.requestPath);
    if (!json) throw new Error(`no JSON handler for ${binary.requestPath}`);
    router.handlers.push(byFormat(binary, json));
  }
}

/** Clones telemetry.proto's descriptor with both requests' `batch` as `bytes` and builds its TelemetryService. */
function buildWireView(): DescService {
  const proto = clone(FileDescriptorProtoSchema, file_powerplane_v1_telemetry.proto);
  for (const name of ['StreamReadingsRequest', 'WriteReadingsRequest']) {
    const message = proto.messageType.find((m) => m.name === name);
    const field = message?.field.find((f) => f.name === 'batch');
    if (!message || !field) throw new Error(`telemetry.proto has no ${name}.batch`);
    field.type = FieldDescriptorProto_Type.BYTES;
    field.typeName = '';
    // A message field has presence; a proto3 bytes field has it only when optional.
    if (!isFieldSet(field, FieldDescriptorProtoSchema.field.oneofIndex)) {
      field.proto3Optional = true;
      field.oneofIndex = message.oneofDecl.length;
      message.oneofDecl.push(create(OneofDescriptorProtoSchema, { name: '_batch' }));
    }
  }
  const registry = createFileRegistry(proto, (file) =>
    file === file_google_protobuf_timestamp.proto.name ? file_google_protobuf_timestamp : undefined,
  );
  const service = registry.getService(TelemetryService.typeName);
  if (!service) throw new Error('the wire view has no TelemetryService');
  return service;
}
