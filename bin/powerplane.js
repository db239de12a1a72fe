#!/usr/bin/env node
// The `powerplane` executable. The product runs from its TypeScript sources through tsx's
// loader (a runtime dependency), so there is no build step between `npm ci` and `npm start`.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
