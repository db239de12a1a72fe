import type { UniversalHandler, UniversalServerRequest } from '@connectrpc/connect/protocol';

/** Content types of JSON requests: `application/json`, `application/connect+json`, `application/grpc+json`, `application/grpc-web+json`. */
const JSON_CONTENT_TYPE = /^application\/(?:[a-z-]+\+)?json\s*(?:;|$)/i;

/**
 * One handler for a path that hands JSON requests to `json` and the rest to `binary`: a
 * service served through a wire view (hand-encoded bytes) for binary callers keeps
 * protobuf-es's JSON for curl and browsers.
 */
export function byFormat(binary: UniversalHandler, json: UniversalHandler): UniversalHandler {
  const handler = (request: UniversalServerRequest) =>
    JSON_CONTENT_TYPE.test(request.header.get('content-type') ?? '') ? json(request) : binary(request);
  return Object.assign(handler, {
    protocolNames: json.protocolNames,
    service: json.service,
    method: json.method,
    requestPath: json.requestPath,
    allowedMethods: json.allowedMethods,
    supportedContentType: json.supportedContentType,
  });
}
