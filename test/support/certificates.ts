import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A PEM certificate and key on disk (for `POWERPLANE_TLS_*`) and in memory (for clients). */
export interface Issued {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** A throwaway certificate authority in a temporary directory; `remove` deletes it all. */
export interface TestCa extends Issued {
  /** Issues a certificate for `commonName` with the given subject alternative names (`DNS:…`, `URI:…`, `IP:…`). */
  issue(name: string, commonName: string, options: { altNames: readonly string[]; usage: 'serverAuth' | 'clientAuth' }): Issued;
  remove(): void;
}

/**
 * Creates a CA with the `openssl` CLI (Node has no X.509 issuer; OpenSSL is on every CI
 * image this runs on). P-256 keys, valid for a day, nothing outside the temporary directory.
 */
export function createTestCa(label = 'Powerplane test CA', dir = mkdtempSync(path.join(tmpdir(), 'powerplane-tls-'))): TestCa {
  const file = (name: string) => path.join(dir, name);
  const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
  const read = (certFile: string, keyFile: string): Issued => ({
    certFile,
    keyFile,
    cert: readFileSync(certFile),
    key: readFileSync(keyFile),
  });
  const slug = label.replace(/\W+/g, '-').toLowerCase();
  openssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '1',
    '-subj',
    `/CN=${label}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout',
    file(`${slug}.key`),
    '-out',
    file(`${slug}.crt`),
  ]);
  const ca = read(file(`${slug}.crt`), file(`${slug}.key`));
  return {
    ...ca,
    issue(name, commonName, { altNames, usage }) {
      openssl([
        'req',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-subj',
        `/CN=${commonName}`,
        '-keyout',
        file(`${name}.key`),
        '-out',
        file(`${name}.csr`),
      ]);
      writeFileSync(file(`${name}.ext`), `subjectAltName=${altNames.join(',')}\nextendedKeyUsage=${usage}\nbasicConstraints=CA:FALSE\n`);
      openssl([
        'x509',
        '-req',
        '-in',
        file(`${name}.csr`),
        '-CA',
        ca.certFile,
        '-CAkey',
        ca.keyFile,
        '-set_serial',
        String(randomInt(1, 2 ** 47)),
        '-days',
        '1',
        '-extfile',
        file(`${name}.ext`),
        '-out',
        file(`${name}.crt`),
      ]);
      return read(file(`${name}.crt`), file(`${name}.key`));
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
