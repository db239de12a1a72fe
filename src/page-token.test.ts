import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors.ts';
import { decodePageToken, encodePageToken, type PageKeyShape } from './page-token.ts';

const UUID = '11111111-1111-4111-8111-111111111111';
const filters = { site: 'a' };

describe('page tokens', () => {
  it('decode the keys they were made with', () => {
    const token = encodePageToken(['site-a', 'bess \u{1F50B}', UUID], filters);
    expect(decodePageToken(token, filters, ['string', 'string', 'uuid'])).toEqual(['site-a', 'bess \u{1F50B}', UUID]);
    expect(decodePageToken(encodePageToken([1_700_000_000_000, 4], filters), filters, ['millis', 'int32'])).toEqual([1_700_000_000_000, 4]);
  });

  // The filter hash is no signature: anyone can make a token with keys of their choosing.
  it.each([
    ['a NUL in a text key', ['a\u0000', 'b', UUID], ['string', 'string', 'uuid']],
    ['a lone surrogate in a text key', ['a\ud800', 'b', UUID], ['string', 'string', 'uuid']],
    ['a text key longer than any name', ['a'.repeat(201), 'b', UUID], ['string', 'string', 'uuid']],
    ['a time no Date holds', [8.64e15 + 1, UUID], ['millis', 'uuid']],
    ['a fraction where a whole number belongs', [1.5, UUID], ['number', 'uuid']],
    ['a number past the safe integers', [2 ** 60, UUID], ['number', 'uuid']],
    ['a type id PostgreSQL integer cannot hold', [0, 2 ** 31], ['millis', 'int32']],
  ] as const)('are refused with INVALID_ARGUMENT naming page_token for %s', (_name, keys, shape) => {
    const token = encodePageToken([...keys], filters);
    expect(() => decodePageToken(token, filters, shape as PageKeyShape)).toThrow(InvalidArgumentError);
    expect(() => decodePageToken(token, filters, shape as PageKeyShape)).toThrow(/^page_token is not a page token from this API/);
  });
});
