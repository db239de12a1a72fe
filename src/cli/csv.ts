/**
 * CSV as RFC 4180 writes it: cells separated by commas, records by line breaks (CRLF or
 * LF), a cell that holds a comma, a quote or a line break enclosed in double quotes with
 * its quotes doubled. The reader is strict where a loose one would guess: a quote inside an
 * unquoted cell, text after a closing quote and an unclosed quote are errors naming the
 * line. Lines with nothing on them are skipped; a UTF-8 byte order mark is ignored.
 */

/** One record of a CSV text: its cells and the line it starts on (1-based). */
export interface CsvRecord {
  readonly line: number;
  readonly cells: readonly string[];
  /** Whether each cell was enclosed in quotes (so its spaces at either end were meant). */
  readonly quoted: readonly boolean[];
}

/** Text that is not CSV, at `line` (1-based), in cell `cell` (1-based) of its record. */
export class CsvSyntaxError extends Error {
  override readonly name = 'CsvSyntaxError';
  constructor(
    readonly line: number,
    readonly cell: number,
    problem: string,
  ) {
    super(`line ${line}, cell ${cell}: ${problem}`);
  }
}

const COMMA = 44;
const QUOTE = 34;
const LF = 10;
const CR = 13;

/** Splits `text` into records; throws {@link CsvSyntaxError} at the first malformed cell. */
export function parseCsv(text: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  while (i < text.length) {
    const start = line;
    const cells: string[] = [];
    const quoted: boolean[] = [];
    for (;;) {
      let cell: string;
      const isQuoted = text.charCodeAt(i) === QUOTE;
      if (isQuoted) {
        const opened = line;
        cell = '';
        i++;
        for (;;) {
          const close = text.indexOf('"', i);
          if (close < 0) throw new CsvSyntaxError(opened, cells.length + 1, 'the quoted cell opened here is never closed');
          const part = text.slice(i, close);
          line += countLineFeeds(part);
          cell += part;
          i = close + 1;
          if (text.charCodeAt(i) !== QUOTE) break;
          cell += '"';
          i++;
        }
        const next = text.charCodeAt(i);
        if (i < text.length && next !== COMMA && next !== LF && next !== CR)
          throw new CsvSyntaxError(line, cells.length + 1, 'text after the closing quote (a quote inside a quoted cell is written "")');
      } else {
        let j = i;
        for (; j < text.length; j++) {
          const c = text.charCodeAt(j);
          if (c === COMMA || c === LF || c === CR) break;
          if (c === QUOTE)
            throw new CsvSyntaxError(
              line,
              cells.length + 1,
              'a quote inside an unquoted cell (quote the whole cell and write the quote as "")',
            );
        }
        cell = text.slice(i, j);
        i = j;
      }
      cells.push(cell);
      quoted.push(isQuoted);
      if (text.charCodeAt(i) === COMMA) {
        i++;
        continue;
      }
      if (text.charCodeAt(i) === CR) i++;
      if (text.charCodeAt(i) === LF) i++;
      line++;
      break;
    }
    if (quoted[0] || cells.length > 1 || cells[0]!.trim() !== '') records.push({ line: start, cells, quoted });
  }
  return records;
}

function countLineFeeds(s: string): number {
  let n = 0;
  for (let k = s.indexOf('\n'); k >= 0; k = s.indexOf('\n', k + 1)) n++;
  return n;
}

/**
 * One CSV record with its line feed. A cell is quoted when it must be (a comma, a quote
 * or a line break in it) and when its spaces at either end would otherwise be lost to a
 * reader that trims.
 */
export function formatCsvRecord(cells: readonly string[]): string {
  return `${cells.map(formatCell).join(',')}\n`;
}

function formatCell(cell: string): string {
  if (/[",\r\n]/.test(cell) || cell !== cell.trim()) return `"${cell.replaceAll('"', '""')}"`;
  return cell;
}
