import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../errors.ts';
import { commandLogOutput } from './log-output.ts';
import { UsageError } from './usage.ts';

describe('the log output of agent and demo', () => {
  const terminal = { isTTY: true, hasColors: () => true };
  const pipe = { isTTY: false };

  it('is readable lines on a terminal and JSON lines otherwise, as serve logs', () => {
    expect(commandLogOutput(undefined, terminal, {})).toEqual({ format: 'pretty', colorize: true });
    expect(commandLogOutput(undefined, pipe, {})).toEqual({ format: 'json', colorize: false });
  });

  it('follows POWERPLANE_LOG_FORMAT, and --log-format over it', () => {
    expect(commandLogOutput(undefined, pipe, { logFormat: 'pretty' })).toEqual({ format: 'pretty', colorize: false });
    expect(commandLogOutput(undefined, terminal, { logFormat: 'json' })).toEqual({ format: 'json', colorize: false });
    expect(commandLogOutput('json', terminal, { logFormat: 'pretty' })).toEqual({ format: 'json', colorize: false });
    expect(commandLogOutput('pretty', terminal, { logFormat: 'json' })).toEqual({ format: 'pretty', colorize: true });
  });

  it('refuses a bad flag as a usage error and a bad variable naming it', () => {
    expect(() => commandLogOutput('xml', pipe, {})).toThrow(UsageError);
    expect(() => commandLogOutput('xml', pipe, {})).toThrow('--log-format must be one of auto, json, pretty (got "xml")');
    expect(() => commandLogOutput(undefined, pipe, { logFormat: 'fancy' })).toThrow(InvalidArgumentError);
    expect(() => commandLogOutput(undefined, pipe, { logFormat: 'fancy' })).toThrow(/POWERPLANE_LOG_FORMAT.*fancy/);
  });
});
