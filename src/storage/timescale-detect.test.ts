import { describe, expect, it } from 'vitest';
import { decideTimescale, namesTimescale, parsePreloadLibraries, preloadLine, type TimescaleFacts } from './timescale-detect.ts';

describe('reading shared_preload_libraries', () => {
  it.each([
    ['', []],
    ['timescaledb', ['timescaledb']],
    ['pg_stat_statements, "timescaledb"', ['pg_stat_statements', 'timescaledb']],
    ['  pg_stat_statements ,timescaledb  ', ['pg_stat_statements', 'timescaledb']],
    ['pg_stat_statements,,timescaledb,', ['pg_stat_statements', 'timescaledb']],
    ['"a,b", c', ['a,b', 'c']],
    ['"say ""hi""", x', ['say "hi"', 'x']],
    ['$libdir/timescaledb', ['$libdir/timescaledb']],
    ['TimescaleDB', ['TimescaleDB']],
    ['"unterminated', ['unterminated']],
    ['"quoted" , next', ['quoted', 'next']],
  ])('splits %j into %j', (setting, libraries) => {
    expect(parsePreloadLibraries(setting)).toEqual(libraries);
  });

  it.each([
    [['timescaledb'], true],
    [['pg_stat_statements', 'timescaledb'], true],
    [['$libdir/timescaledb'], true],
    [['timescaledb.so'], true],
    [['/usr/lib/postgresql/16/lib/timescaledb.so'], true],
    [['timescaledb-2.28.0'], false],
    [['timescaledb_toolkit'], false],
    [['pg_timescaledb'], false],
    [['TimescaleDB'], false],
    [[], false],
  ])('takes %j as preloading TimescaleDB: %s', (libraries, preloaded) => {
    expect(namesTimescale(libraries)).toBe(preloaded);
  });

  it.each([
    [undefined, "shared_preload_libraries = 'timescaledb'"],
    ['', "shared_preload_libraries = 'timescaledb'"],
    ['pg_stat_statements', "shared_preload_libraries = 'pg_stat_statements,timescaledb'"],
    ['"my lib", auto_explain', `shared_preload_libraries = '"my lib",auto_explain,timescaledb'`],
    ['"it\'s"', `shared_preload_libraries = '"it''s",timescaledb'`],
  ])('advises, for %j, the line %s', (preload, line) => {
    expect(preloadLine(preload)).toBe(line);
  });
});

describe('deciding whether TimescaleDB is usable', () => {
  const facts = (created: boolean, available: boolean, preload: string | undefined): TimescaleFacts => ({
    created,
    available,
    preload,
    configFile: undefined,
  });

  it.each([
    ['not installed', facts(false, false, ''), 'absent'],
    ['not installed, though named', facts(false, false, 'timescaledb'), 'absent'],
    ['installed, preloaded', facts(false, true, 'pg_stat_statements, "timescaledb"'), 'usable'],
    ['installed, not preloaded', facts(false, true, 'pg_stat_statements'), 'not-preloaded'],
    ['installed, nothing preloaded', facts(false, true, ''), 'not-preloaded'],
    ['installed, only a versioned module preloaded', facts(false, true, 'timescaledb-2.28.0'), 'not-preloaded'],
    ['installed, preload unreadable', facts(false, true, undefined), 'preload-unknown'],
    ['created, preloaded', facts(true, true, 'timescaledb'), 'usable'],
    ['created, preload unreadable', facts(true, true, undefined), 'usable'],
    ['created, no longer preloaded', facts(true, true, 'pg_stat_statements'), 'created-not-preloaded'],
  ] as const)('%s: %s', (_, given, status) => {
    expect(decideTimescale(given)).toBe(status);
  });
});
