/**
 * Services and methods in the API reference: for each method its signature, request and
 * response, streaming kind, the error codes its comment names, and the comment itself.
 */
import type { DescMethod, DescService } from '@bufbuild/protobuf';
import { methodErrors } from './error-model.ts';
import { anchor, cell, code, commentOf, linkTo, methodId, prose } from './markdown.ts';
import { typeLink } from './types.ts';

/** How a method streams, in words. */
export function streamingKind(method: DescMethod): string {
  switch (method.methodKind) {
    case 'unary':
      return 'unary';
    case 'server_streaming':
      return 'server stream';
    case 'client_streaming':
      return 'client stream';
    case 'bidi_streaming':
      return 'bidirectional stream';
  }
}

/** The method as the .proto declares it, e.g. `rpc Watch(WatchRequest) returns (stream Event)`. */
export function signature(method: DescMethod): string {
  const clientStreams = method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming';
  const serverStreams = method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming';
  const input = `${clientStreams ? 'stream ' : ''}${method.input.name}`;
  const output = `${serverStreams ? 'stream ' : ''}${method.output.name}`;
  return `rpc ${method.name}(${input}) returns (${output})`;
}

/** The first sentence of a comment, for summary tables. */
export function firstSentence(comment: string): string {
  const flat = comment.replaceAll('\n', ' ');
  const end = flat.search(/\.(\s|$)/);
  return end === -1 ? flat : flat.slice(0, end + 1);
}

function renderMethod(method: DescMethod, pkg: string): string[] {
  const comment = commentOf(method);
  const lines = [
    anchor(methodId(method)),
    `#### ${method.parent.name}.${method.name}`,
    '',
    code(signature(method)),
    '',
    `- Request: ${typeLink(method.input, pkg)}`,
    `- Response: ${typeLink(method.output, pkg)}`,
    `- Kind: ${streamingKind(method)}`,
    `- Errors: ${methodErrors(method.parent, comment)}`,
    '',
  ];
  if (method.deprecated) lines.push('**Deprecated.**', '');
  if (comment) lines.push(prose(comment), '');
  return lines;
}

/**
 * A service's section: where it is defined (`source`, a Markdown link), its comment, a summary
 * table of its methods, then each method.
 */
export function renderService(service: DescService, pkg: string, source: string): string[] {
  const lines = [anchor(service.typeName), `### ${service.name}`, '', `Defined in ${source}.`, ''];
  const comment = commentOf(service);
  if (comment) lines.push(prose(comment), '');
  lines.push(
    '| method | request | response | kind | summary |',
    '| --- | --- | --- | --- | --- |',
    ...service.methods.map(
      (m) =>
        `| ${linkTo(methodId(m), m.name)} | ${typeLink(m.input, pkg)} | ${typeLink(m.output, pkg)} | ${streamingKind(m)} | ` +
        `${cell(firstSentence(commentOf(m)))} |`,
    ),
    '',
  );
  for (const method of service.methods) lines.push(...renderMethod(method, pkg));
  return lines;
}
