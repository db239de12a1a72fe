/**
 * Builds the `powerplane/client` package export: compiles src/client/ (and the generated
 * code it imports) with tsconfig.client.json into a fresh dist/client/, or into the
 * directory `--out-dir` names. `npm ci` runs it through `prepare`. With `--if-available`
 * it does nothing when TypeScript is not installed (an install without devDependencies,
 * which runs the server only); without it, that is an error.
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseArgs } from 'node:util';

const root = path.resolve(import.meta.dirname, '..');
const { values } = parseArgs({ options: { 'out-dir': { type: 'string' }, 'if-available': { type: 'boolean' } } });
const outDir = path.resolve(root, values['out-dir'] ?? 'dist/client');

let tsc: string;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  if (values['if-available']) {
    console.log('build-client: TypeScript is not installed; powerplane/client not built');
    process.exit(0);
  }
  console.error('build-client: TypeScript is not installed (npm ci installs it)');
  process.exit(1);
}

rmSync(outDir, { recursive: true, force: true });
const run = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.client.json'), '--outDir', outDir], { stdio: 'inherit' });
process.exit(run.status ?? 1);
