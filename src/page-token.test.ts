import { describe, expect, it } from 'vitest';
import { DEFAULT_PAGE_BYTES, pageBytesFor, takePage } from './page-token.ts';

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
