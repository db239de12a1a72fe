/**
 * Messages, enums and field types in the API reference. A type of the documented package
 * links to its section on the page; a well-known type links to protobuf.dev; any other
 * package's type links to the "Other packages" section.
 */
import { ScalarType, type DescEnum, type DescField, type DescFile, type DescMessage } from '@bufbuild/protobuf';
import { anchor, cell, code, commentOf, linkTo, prose } from './markdown.ts';

/** The anchor of the section listing the packages beside the documented one. */
export const OTHER_PACKAGES = 'other-packages';

const WELL_KNOWN = 'google.protobuf.';

/** The name a type is shown by: relative to the documented package, else in full. */
export function shortName(typeName: string, pkg: string): string {
  return typeName.startsWith(`${pkg}.`) ? typeName.slice(pkg.length + 1) : typeName;
}

/** A link to a message or enum, wherever it is documented. */
export function typeLink(type: DescMessage | DescEnum, pkg: string): string {
  const name = shortName(type.typeName, pkg);
  if (type.file.proto.package === pkg) return linkTo(type.typeName, name);
  if (type.typeName.startsWith(WELL_KNOWN)) {
    const slug = type.typeName.slice(WELL_KNOWN.length).toLowerCase();
    return `[${name}](https://protobuf.dev/reference/protobuf/google.protobuf/#${slug})`;
  }
  return `[${name}](#${OTHER_PACKAGES})`;
}

/** A scalar type as the .proto spells it (`double`, `uint32`, `bytes`). */
function scalarName(scalar: ScalarType): string {
  return ScalarType[scalar].toLowerCase();
}

/** A field's type cell: a scalar, a linked message or enum, or a `map<K, V>` of those. */
export function fieldType(field: DescField, pkg: string): string {
  switch (field.fieldKind) {
    case 'scalar':
      return scalarName(field.scalar);
    case 'enum':
      return typeLink(field.enum, pkg);
    case 'message':
      return typeLink(field.message, pkg);
    case 'list':
      return field.listKind === 'scalar' ? scalarName(field.scalar) : typeLink(field.listKind === 'enum' ? field.enum : field.message, pkg);
    case 'map': {
      const value =
        field.mapKind === 'scalar' ? scalarName(field.scalar) : typeLink(field.mapKind === 'enum' ? field.enum : field.message, pkg);
      return `map&lt;${scalarName(field.mapKey)}, ${value}&gt;`;
    }
  }
}

/** A field's label cell: `repeated`, `map`, `optional` (explicit presence), `oneof x`, or empty. */
export function fieldLabel(field: DescField): string {
  if (field.fieldKind === 'list') return 'repeated';
  if (field.fieldKind === 'map') return 'map';
  if (field.oneof) return `oneof ${code(field.oneof.name)}`;
  return field.proto.proto3Optional ? 'optional' : '';
}

/** Every message of a file, nested ones right after their parent, in declaration order. */
export function messagesOf(file: DescFile): DescMessage[] {
  const out: DescMessage[] = [];
  const visit = (message: DescMessage) => {
    out.push(message);
    message.nestedMessages.forEach(visit);
  };
  file.messages.forEach(visit);
  return out;
}

/** Every enum of a file, top-level ones first, then those nested in its messages. */
export function enumsOf(file: DescFile): DescEnum[] {
  return [...file.enums, ...messagesOf(file).flatMap((m) => m.nestedEnums)];
}

function deprecated(flag: boolean): string {
  return flag ? '**Deprecated.** ' : '';
}

/** A message's section: its comment, a table of its fields, and its oneofs' comments. */
export function renderMessage(message: DescMessage, pkg: string): string[] {
  const lines = [anchor(message.typeName), `#### ${shortName(message.typeName, pkg)}`, ''];
  const comment = commentOf(message);
  if (comment || message.deprecated) lines.push(deprecated(message.deprecated) + prose(comment), '');
  if (message.fields.length === 0) {
    lines.push('No fields.', '');
  } else {
    lines.push(
      '| field | number | type | label | description |',
      '| --- | --- | --- | --- | --- |',
      ...message.fields.map(
        (field) =>
          `| ${code(field.name)} | ${field.number} | ${fieldType(field, pkg)} | ${fieldLabel(field)} | ` +
          `${deprecated(field.deprecated)}${cell(commentOf(field))} |`,
      ),
      '',
    );
  }
  for (const oneof of message.oneofs) {
    const fields = oneof.fields.map((f) => code(f.name)).join(', ');
    const oneofComment = commentOf(oneof);
    lines.push(`At most one of ${fields} is set (oneof ${code(oneof.name)})${oneofComment ? `: ${cell(oneofComment)}` : '.'}`, '');
  }
  return lines;
}

/** An enum's section: its comment and a table of its values. */
export function renderEnum(desc: DescEnum, pkg: string): string[] {
  const lines = [anchor(desc.typeName), `#### ${shortName(desc.typeName, pkg)}`, ''];
  const comment = commentOf(desc);
  if (comment || desc.deprecated) lines.push(deprecated(desc.deprecated) + prose(comment), '');
  lines.push(
    '| value | number | description |',
    '| --- | --- | --- |',
    ...desc.values.map((v) => `| ${code(v.name)} | ${v.number} | ${deprecated(v.deprecated)}${cell(commentOf(v))} |`),
    '',
  );
  return lines;
}
