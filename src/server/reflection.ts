import { toBinary, type DescFile } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import { ServerReflection as ReflectionV1, type ServerReflectionRequest } from '../../gen/grpc/reflection/v1/reflection_pb.ts';
import { ServerReflection as ReflectionV1alpha } from '../../gen/grpc/reflection/v1alpha/reflection_pb.ts';

/** gRPC status codes used in reflection error responses. */
const NOT_FOUND = 5;
const UNIMPLEMENTED = 12;

/** An index of the descriptors the server can describe: files by name, symbols to files. */
interface DescriptorIndex {
  readonly services: readonly string[];
  readonly files: ReadonlyMap<string, DescFile>;
  readonly symbols: ReadonlyMap<string, DescFile>;
}

/**
 * Builds the index from the generated files of the served services, their dependencies
 * included (well-known types too), so grpcurl can resolve every type without .proto files.
 */
export function indexDescriptors(files: readonly DescFile[]): DescriptorIndex {
  const byName = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const services: string[] = [];
  const visit = (file: DescFile) => {
    if (byName.has(file.proto.name)) return;
    byName.set(file.proto.name, file);
    file.dependencies.forEach(visit);
    for (const service of file.services) {
      symbols.set(service.typeName, file);
      for (const method of service.methods) symbols.set(`${service.typeName}.${method.name}`, file);
    }
    for (const e of file.enums) symbols.set(e.typeName, file);
    for (const ext of file.extensions) symbols.set(ext.typeName, file);
    const visitMessage = (message: DescFile['messages'][number]) => {
      symbols.set(message.typeName, file);
      message.nestedMessages.forEach(visitMessage);
      for (const e of message.nestedEnums) symbols.set(e.typeName, file);
    };
    file.messages.forEach(visitMessage);
  };
  files.forEach(visit);
  for (const file of files) for (const service of file.services) services.push(service.typeName);
  return { services: [...new Set(services)].sort(), files: byName, symbols };
}

/** Serialises `file` and everything it imports, each once, the file itself first. */
function withDependencies(file: DescFile): Uint8Array[] {
  const seen = new Set<string>();
  const out: Uint8Array[] = [];
  const add = (f: DescFile) => {
    if (seen.has(f.proto.name)) return;
    seen.add(f.proto.name);
    out.push(toBinary(FileDescriptorProtoSchema, f.proto));
    f.dependencies.forEach(add);
  };
  add(file);
  return out;
}

/** A response as an init shape; the version's own schema builds it when it is sent. */
interface ReflectionResponseInit {
  readonly originalRequest: ServerReflectionRequest;
  readonly messageResponse: { readonly case: string; readonly value: unknown };
}

/** Answers one reflection request from the index. */
function answer(index: DescriptorIndex, req: ServerReflectionRequest): ReflectionResponseInit {
  const base = { originalRequest: req };
  const error = (errorCode: number, errorMessage: string) => ({
    ...base,
    messageResponse: { case: 'errorResponse', value: { errorCode, errorMessage } },
  });
  const files = (file: DescFile | undefined, what: string) =>
    file
      ? { ...base, messageResponse: { case: 'fileDescriptorResponse', value: { fileDescriptorProto: withDependencies(file) } } }
      : error(NOT_FOUND, `${what} not found`);
  const request = req.messageRequest;
  switch (request.case) {
    case 'listServices':
      return { ...base, messageResponse: { case: 'listServicesResponse', value: { service: index.services.map((name) => ({ name })) } } };
    case 'fileByFilename':
      return files(index.files.get(request.value), `file ${request.value}`);
    case 'fileContainingSymbol':
      return files(index.symbols.get(request.value.replace(/^\./, '')), `symbol ${request.value}`);
    case 'fileContainingExtension':
      return error(NOT_FOUND, `extension ${request.value.extensionNumber} of ${request.value.containingType} not found`);
    case 'allExtensionNumbersOfType':
      return index.symbols.has(request.value)
        ? { ...base, messageResponse: { case: 'allExtensionNumbersResponse', value: { baseTypeName: request.value, extensionNumber: [] } } }
        : error(NOT_FOUND, `type ${request.value} not found`);
    case undefined:
      return error(UNIMPLEMENTED, 'empty reflection request');
    default: {
      const unknown: never = request;
      return error(UNIMPLEMENTED, `unsupported reflection request ${String(unknown)}`);
    }
  }
}

/**
 * `grpc.reflection.v1` and `v1alpha` ServerReflection. The two versions have the same
 * messages under different packages, so one implementation answers both; many tools still
 * ask v1alpha first.
 */
export function createReflectionServices(files: readonly DescFile[]): {
  v1: ServiceImpl<typeof ReflectionV1>;
  v1alpha: ServiceImpl<typeof ReflectionV1alpha>;
} {
  const index = indexDescriptors(files);
  async function* serverReflectionInfo(requests: AsyncIterable<ServerReflectionRequest>) {
    for await (const req of requests) yield answer(index, req);
  }
  return {
    v1: { serverReflectionInfo } as unknown as ServiceImpl<typeof ReflectionV1>,
    v1alpha: { serverReflectionInfo } as unknown as ServiceImpl<typeof ReflectionV1alpha>,
  };
}
