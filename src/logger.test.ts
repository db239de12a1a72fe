import { describe, expect, it } from 'vitest';
import { createLogger, resolveLogFormat, terminalLogOutput, type LogOutput } from './logger.ts';

/** A logger at info writing into `lines`, one entry per write. */
function capture(output?: LogOutput) {
  const lines: string[] = [];
  const log = createLogger('info', { write: (line: string) => void lines.push(line) }, output);
  return { log, lines };
}

const ESC = '\u001b';

describe('createLogger', () => {
  it('writes JSON lines by default, with the service, module and fields', () => {
    const { log, lines } = capture();
    log.child({ module: 'registry' }).info({ deviceId: 'd-1', durationMs: 12 }, 'device created');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      level: 30,
      service: 'powerplane',
      module: 'registry',
      deviceId: 'd-1',
      durationMs: 12,
      msg: 'device created',
    });
  });

  it('writes one readable line in pretty mode: time, level, module, message and fields, no JSON', () => {
    const { log, lines } = capture({ format: 'pretty' });
    log.child({ module: 'registry' }).info({ deviceId: 'd-1', durationMs: 12, site: 'north yard' }, 'device created');
    // The stream is synchronous: the line is written before the call returns.
    expect(lines).toHaveLength(1);
    const line = lines.join('');
    expect(line).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(registry\): device created deviceId=d-1 durationMs=12 site="north yard"\n$/);
    expect(line).not.toMatch(/[{}]/);
    expect(line).not.toContain('powerplane');
    expect(line).not.toContain(ESC);
  });

  it('prints an error message on the line and its stack below it', () => {
    const { log, lines } = capture({ format: 'pretty' });
    log.child({ module: 'rpc' }).error({ err: new Error('disk full'), method: 'Submit' }, 'call failed');
    const [first, ...rest] = lines.join('').trimEnd().split('\n');
    expect(first).toMatch(/ERROR \(rpc\): call failed err="disk full" method=Submit$/);
    expect(rest[0]).toBe('    Error: disk full');
    expect(rest.slice(1).every((line) => line.startsWith('        at '))).toBe(true);
    expect(rest.length).toBeGreaterThan(1);
  });

  it('escapes control characters, so a value can neither forge a line nor drive the terminal', () => {
    const { log, lines } = capture({ format: 'pretty' });
    log.warn({ name: `evil\n[00:00:00.000] INFO: forged ${ESC}[31m` }, `two\nlines`);
    const text = lines.join('');
    expect(text.trimEnd().split('\n')).toHaveLength(1);
    expect(text).not.toContain(ESC);
    expect(text).toContain('two\\u000alines');
    expect(text).toContain('name="evil\\n[00:00:00.000] INFO: forged \\u001b[31m"');
  });

  it('writes name, pid and nested values as fields like any other', () => {
    const { log, lines } = capture({ format: 'pretty' });
    log.child({ module: 'auth' }).info({ name: 'ops desk', pid: 4242, sites: ['north', 'south'] }, 'token created');
    expect(lines.join('')).toMatch(/INFO \(auth\): token created name="ops desk" pid=4242 sites=\["north","south"\]\n$/);
  });

  it('colours readable lines only when told to', () => {
    const coloured = capture({ format: 'pretty', colorize: true });
    coloured.log.info({ deviceId: 'd-1' }, 'device created');
    expect(coloured.lines.join('')).toContain(`${ESC}[32mINFO`);
    const plain = capture({ format: 'pretty', colorize: false });
    plain.log.info({ deviceId: 'd-1' }, 'device created');
    expect(plain.lines.join('')).not.toContain(ESC);
  });

  it.each<[string, LogOutput]>([
    ['json', { format: 'json' }],
    ['pretty', { format: 'pretty' }],
  ])('redacts secrets in %s lines', (_name, output) => {
    const { log, lines } = capture(output);
    log.info(
      {
        token: 'tok-secret',
        authorization: 'Bearer auth-secret',
        databaseUrl: 'postgres://u:db-secret@h/d',
        client: { password: 'pw-secret', token: 'nested-secret' },
        site: 'north',
      },
      'connected',
    );
    const text = lines.join('');
    for (const secret of ['tok-secret', 'auth-secret', 'db-secret', 'pw-secret', 'nested-secret']) expect(text).not.toContain(secret);
    expect(text).toContain('***');
    expect(text).toContain('north');
  });
});

describe('the log format of a command', () => {
  it('is readable lines on a terminal and JSON lines otherwise when auto', () => {
    expect(resolveLogFormat('auto', true)).toBe('pretty');
    expect(resolveLogFormat('auto', false)).toBe('json');
  });

  it('is what the setting says when it is json or pretty, terminal or not', () => {
    expect(resolveLogFormat('json', true)).toBe('json');
    expect(resolveLogFormat('pretty', false)).toBe('pretty');
  });

  it('colours only a terminal that has colours', () => {
    expect(terminalLogOutput('auto', { isTTY: true, hasColors: () => true })).toEqual({ format: 'pretty', colorize: true });
    expect(terminalLogOutput('auto', { isTTY: true, hasColors: () => false })).toEqual({ format: 'pretty', colorize: false });
    expect(terminalLogOutput('pretty', { isTTY: false, hasColors: () => true })).toEqual({ format: 'pretty', colorize: false });
    expect(terminalLogOutput('auto', {})).toEqual({ format: 'json', colorize: false });
  });
});
