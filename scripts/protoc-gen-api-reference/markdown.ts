/**
 * Markdown building blocks of the API reference: proto comments turned into paragraphs or
 * table cells, and the anchors every element is linked by.
 */
import type { AnyDesc, DescComments, DescFile, DescMethod } from '@bufbuild/protobuf';
import { getComments } from '@bufbuild/protoplugin';

/**
 * The text of an element's comment: its leading comment (or, when it has none, its trailing
 * one) without the single space protoc keeps after `//`, trailing blanks and surrounding blank
 * lines removed. Empty when the element has no comment.
 */
export function commentOf(desc: Exclude<AnyDesc, DescFile>): string {
  return normalizeComment(getComments(desc));
}

/** {@link commentOf} for comments already read from the source info. */
export function normalizeComment(comments: Pick<DescComments, 'leading' | 'trailing'>): string {
  const raw = comments.leading ?? comments.trailing ?? '';
  return raw
    .split('\n')
    .map((line) => (line.startsWith(' ') ? line.slice(1) : line).trimEnd())
    .join('\n')
    .trim();
}

/** Applies `escape` to the text outside `code spans`, leaving the spans as written. */
function outsideCode(text: string, escape: (plain: string) => string): string {
  return text
    .split(/(`[^`]*`)/)
    .map((part, i) => (i % 2 === 1 ? part : escape(part)))
    .join('');
}

/**
 * A comment as Markdown paragraphs. The comment's line breaks stay (Markdown joins the lines of
 * a paragraph), `<` outside code spans is escaped so that `<id>` is not read as HTML, and a line
 * that would open a heading, a quote or a rule is escaped so it stays prose.
 */
export function prose(comment: string): string {
  return comment
    .split('\n')
    .map((line) => {
      const escaped = outsideCode(line, (plain) => plain.replaceAll('<', '&lt;'));
      return /^(#|>|[-=]+$)/.test(escaped) ? `\\${escaped}` : escaped;
    })
    .join('\n');
}

/**
 * A comment as one table cell: one line, paragraphs separated by `<br><br>`, `|` escaped
 * (inside code spans too, as GitHub tables need it) and `<` escaped outside code spans.
 */
export function cell(comment: string): string {
  return comment
    .split(/\n\s*\n/)
    .map((paragraph) => outsideCode(paragraph.replaceAll('\n', ' '), (plain) => plain.replaceAll('<', '&lt;')).replaceAll('|', '\\|'))
    .join('<br><br>');
}

/**
 * The anchor of an element: its full protobuf name (`powerplane.v1.SiteConfig`,
 * `powerplane.v1.DispatchService.SubmitDispatch`), so a link names what it points to and never
 * depends on the renderer's heading slugs.
 */
export function anchor(typeName: string): string {
  return `<a id="${typeName}"></a>`;
}

/** The anchor id of a method: its service's full name and its own. */
export function methodId(method: DescMethod): string {
  return `${method.parent.typeName}.${method.name}`;
}

/** A link to an element of this page by its full name, showing `label`. */
export function linkTo(typeName: string, label: string): string {
  return `[${label}](#${typeName})`;
}

/** `code` as an inline code span. */
export function code(text: string): string {
  return `\`${text}\``;
}
