import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CsvSyntaxError, formatCsvRecord, parseCsv } from './csv.ts';

const cellsOf = (text: string) => parseCsv(text).map((r) => r.cells);

describe('parseCsv', () => {
  it.each([
    [
      'a,b,c\n1,2,3\n',
      [
        ['a', 'b', 'c'],
        ['1', '2', '3'],
      ],
    ],
    [
      'a,b\r\n1,2\r\n',
      [
        ['a', 'b'],
        ['1', '2'],
      ],
    ],
    [
      'a,b\n1,2',
      [
        ['a', 'b'],
        ['1', '2'],
      ],
    ],
    ['a,,\n', [['a', '', '']]],
    ['"a,b","say ""hi""",c\n', [['a,b', 'say "hi"', 'c']]],
    ['"two\nlines",x\n', [['two\nlines', 'x']]],
    ['""\n', [['']]],
    ['\uFEFFname,site\n', [['name', 'site']]],
    [' a , b \n', [[' a ', ' b ']]],
    ['a\n\n   \nb\n', [['a'], ['b']]],
    ['', []],
  ])('reads %j', (text, expected) => {
    expect(cellsOf(text)).toEqual(expected);
  });

  it('numbers each record by the line it starts on, counting line breaks inside quotes', () => {
    const records = parseCsv('h1,h2\n"a\nb",c\n\nd,e\r\nf,g');
    expect(records.map((r) => r.line)).toEqual([1, 2, 5, 6]);
  });

  it('says which cells were quoted', () => {
    expect(parseCsv('" a ",b\n')[0]!.quoted).toEqual([true, false]);
  });

  it.each([
    ['a,b"c\n', 1, 2, 'a quote inside an unquoted cell'],
    ['a,"b"c\n', 1, 2, 'text after the closing quote'],
    ['x\na,"b\nc\n', 2, 2, 'the quoted cell opened here is never closed'],
    ['x\n"a\nb" ,c\n', 3, 1, 'text after the closing quote'],
  ])('refuses %j at line %i, cell %i', (text, line, cell, problem) => {
    const err = (() => {
      try {
        parseCsv(text);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(CsvSyntaxError);
    expect(err).toMatchObject({ line, cell });
    expect((err as Error).message).toContain(`line ${line}, cell ${cell}: ${problem}`);
  });
});

describe('formatCsvRecord', () => {
  it('quotes only the cells that need it', () => {
    expect(formatCsvRecord(['plain', 'a,b', 'say "hi"', 'two\nlines', ' padded', ''])).toBe(
      'plain,"a,b","say ""hi""","two\nlines"," padded",\n',
    );
  });

  it('writes records that parseCsv reads back cell for cell', () => {
    const cell = fc.string({ unit: fc.constantFrom('a', 'Z', '0', ' ', ',', '"', '\n', '\r', 'é', '{', '}') });
    fc.assert(
      fc.property(fc.array(fc.array(cell, { minLength: 2, maxLength: 6 }), { minLength: 1, maxLength: 8 }), (rows) => {
        const text = rows.map(formatCsvRecord).join('');
        expect(cellsOf(text)).toEqual(rows);
      }),
    );
  });
});
