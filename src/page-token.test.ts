import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors.ts';
import { DEFAULT_PAGE_BYTES, decodePageToken, encodePageToken, pageBytesFor, takePage, type PageKeyShape } from './page-token.ts';

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

/** Rows that are their own size in bytes. */
const budget = (bytes: number) => ({ bytes, sizeOf: (row: number) => row });

describe('takePage', () => {
  it.each([
    // rows (fetched as limit + 1), limit, budget bytes, expected page, more
    ['a short last page', [1, 1], 3, undefined, [1, 1], false],
    ['a full page with rows after it', [1, 1, 1, 1], 3, undefined, [1, 1, 1], true],
    ['rows that fit the budget exactly', [2, 2, 2], 3, 6, [2, 2, 2], false],
    ['a page ended early by bytes', [4, 4, 4, 4], 3, 10, [4, 4], true],
    ['a row larger than the budget, alone', [50, 1, 1], 3, 10, [50], true],
    ['a large row after small ones, left for the next page', [1, 1, 50], 3, 10, [1, 1], true],
    ['the only row, larger than the budget', [50], 3, 10, [50], false],
    ['no rows', [], 3, 10, [], false],
  ])('takes %s', (_, rows, limit, bytes, page, more) => {
    expect(takePage(rows as number[], limit as number, bytes === undefined ? undefined : budget(bytes as number))).toEqual({ page, more });
  });

  it('measures no row beyond the page limit', () => {
    const measured: number[] = [];
    takePage([1, 2, 3, 4], 3, { bytes: 100, sizeOf: (row) => (measured.push(row), 1) });
    expect(measured).toEqual([1, 2, 3]);
  });
});

describe('the page byte budget', () => {
  it('is a quarter of the message limit: 1 MiB under the default 4 MiB', () => {
    expect(DEFAULT_PAGE_BYTES).toBe(1024 * 1024);
    expect(pageBytesFor(64 * 1024)).toBe(16 * 1024);
  });
});
