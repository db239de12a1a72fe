import { InvalidArgumentError } from './errors.ts';

/**
 * The one check of text that comes from outside: request fields, datum readings, the keys
 * of page tokens. PostgreSQL refuses U+0000 in `text` and `jsonb` (the call would fail
 * with a database error, or a whole batch with it), and a lone UTF-16 surrogate has no
 * UTF-8 form (`jsonb` refuses its `\ud800` escape; a `text` column would silently get
 * U+FFFD instead of what was sent). Lengths are in UTF-16 code units, as JavaScript
 * counts them.
 */

/** A string with `isWellFormed` (ES2024, in every Node.js this product runs on). */
type WellFormed = { isWellFormed(): boolean };

/** Why PostgreSQL cannot store `value` as sent, or undefined when it can. */
export function unstorableReason(value: string): string | undefined {
  if (value.includes('\u0000')) return 'must not contain a NUL character';
  if (!(value as unknown as WellFormed).isWellFormed()) return 'must be well-formed Unicode (it holds a lone surrogate)';
  return undefined;
}

/** What is wrong with a text field of at most `maxLength` characters, or undefined when nothing is. */
export function textProblem(value: string, maxLength: number): string | undefined {
  if (value.length > maxLength) return `must be at most ${maxLength} characters`;
  return unstorableReason(value);
}

/**
 * Returns `value` when it is storable text of at most `maxLength` characters; otherwise
 * throws an {@link InvalidArgumentError} naming `field`. Emptiness is the caller's
 * question (an empty filter often means "any").
 */
export function checkText(field: string, value: string, maxLength: number): string {
  const problem = textProblem(value, maxLength);
  if (problem !== undefined) throw new InvalidArgumentError(field, value, problem);
  return value;
}

/** A string of a JSON value that PostgreSQL cannot store: where it is, what it is and why. */
export interface JsonTextProblem {
  readonly field: string;
  readonly value: string;
  readonly reason: string;
}

/**
 * The first key or string of a JSON value (protobuf `Struct` fields: metadata, register
 * maps) that PostgreSQL cannot store, with its path under `field` (`metadata.site.name`,
 * `points[2]`); undefined when there is none. Lengths are not judged here: a JSON value
 * is bounded as a whole by its own field's rules. Depth is bounded by the message
 * decoder's recursion limit.
 */
export function jsonTextProblem(value: unknown, field: string): JsonTextProblem | undefined {
  if (typeof value === 'string') {
    const reason = unstorableReason(value);
    return reason === undefined ? undefined : { field, value, reason };
  }
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const problem = jsonTextProblem(item, `${field}[${i}]`);
      if (problem) return problem;
    }
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const keyReason = unstorableReason(key);
      if (keyReason !== undefined) return { field, value: key, reason: `has a key that ${keyReason}` };
      const problem = jsonTextProblem(item, `${field}.${key}`);
      if (problem) return problem;
    }
  }
  return undefined;
}

/** Throws an {@link InvalidArgumentError} for the first string of `value` {@link jsonTextProblem} finds. */
export function checkJsonText(field: string, value: unknown): void {
  const problem = jsonTextProblem(value, field);
  if (problem) throw new InvalidArgumentError(problem.field, problem.value, problem.reason);
}

/**
 * `value` with each NUL and lone surrogate written as its `\uXXXX` escape, so a text that
 * only describes input (an audit row's message) can be stored and still reads as sent.
 */
export function escapeUnstorable(value: string): string {
  if (unstorableReason(value) === undefined) return value;
  return value.replace(
    // eslint-disable-next-line no-control-regex -- NUL is the character PostgreSQL refuses.
    /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
