import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors.ts';
import { checkJsonText, checkText, escapeUnstorable, jsonTextProblem, textProblem } from './text.ts';

describe('the text check', () => {
  it.each([
    ['plain text', 'site-a', undefined],
    ["an empty string (emptiness is the caller's question)", '', undefined],
    ['a surrogate pair (an emoji)', 'battery \u{1F50B}', undefined],
    ['exactly the limit', 'x'.repeat(10), undefined],
    ['one over the limit', 'x'.repeat(11), 'must be at most 10 characters'],
    ['a NUL', 'a\u0000b', 'must not contain a NUL character'],
    ['a lone high surrogate', 'a\ud83d', 'must be well-formed Unicode (it holds a lone surrogate)'],
    ['a lone low surrogate', '\udd0bb', 'must be well-formed Unicode (it holds a lone surrogate)'],
    ['a pair in the wrong order', '\udd0b\ud83d', 'must be well-formed Unicode (it holds a lone surrogate)'],
  ])('judges %s', (_name, value, problem) => {
    expect(textProblem(value, 10)).toBe(problem);
  });

  it('throws INVALID_ARGUMENT naming the field, with the value escaped in the message', () => {
    const thrown = (() => {
      try {
        checkText('device.name', 'a\u0000b', 200);
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(thrown).toBeInstanceOf(InvalidArgumentError);
    expect((thrown as InvalidArgumentError).field).toBe('device.name');
    expect((thrown as Error).message).toBe('device.name must not contain a NUL character (got "a\\u0000b")');
    expect(checkText('device.name', 'fine', 200)).toBe('fine');
  });

  it('finds the first bad key or string of a JSON value with its path', () => {
    expect(jsonTextProblem({ a: [1, 'ok', { b: 'x\u0000' }] }, 'metadata')).toEqual({
      field: 'metadata.a[2].b',
      value: 'x\u0000',
      reason: 'must not contain a NUL character',
    });
    expect(jsonTextProblem({ ok: { ['k\ud800']: 1 } }, 'metadata')).toEqual({
      field: 'metadata.ok',
      value: 'k\ud800',
      reason: 'has a key that must be well-formed Unicode (it holds a lone surrogate)',
    });
    expect(jsonTextProblem({ a: null, b: true, c: 1.5, d: ['\u{1F50B}'] }, 'metadata')).toBeUndefined();
    expect(() => checkJsonText('points[3].metadata', { note: 'a\u0000' })).toThrow(
      'points[3].metadata.note must not contain a NUL character',
    );
  });

  it('escapes only what PostgreSQL cannot store, keeping surrogate pairs', () => {
    expect(escapeUnstorable('a\u0000b\ud800c\u{1F50B}\udc00')).toBe('a\\u0000b\\ud800c\u{1F50B}\\udc00');
    expect(escapeUnstorable('plain')).toBe('plain');
  });
});
