import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { TlsConfig } from '../config.ts';
import { InvalidArgumentError } from '../errors.ts';

/** The PEM contents the TLS listener is built from. */
export interface TlsCredentials {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** Client CAs (mutual TLS); undefined when no client certificate is asked for. */
  readonly ca: Buffer | undefined;
}

/**
 * Reads the files `tls` names and checks that OpenSSL accepts them together, so a wrong
 * path, a key that does not match the certificate or a file that is not PEM stops the
 * start with the variable named rather than failing at the first handshake.
 */
export function loadTlsCredentials(tls: TlsConfig): TlsCredentials {
  const cert = read('POWERPLANE_TLS_CERT', tls.certFile);
  const key = read('POWERPLANE_TLS_KEY', tls.keyFile);
  const ca = tls.clientCaFile === undefined ? undefined : read('POWERPLANE_TLS_CLIENT_CA', tls.clientCaFile);
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new InvalidArgumentError(
      'POWERPLANE_TLS_CERT',
      tls.certFile,
      `with POWERPLANE_TLS_KEY must be a PEM certificate chain and its private key (${(err as Error).message})`,
    );
  }
  if (ca) {
    // OpenSSL skips what is not a certificate in a CA list, so parse one to be sure.
    try {
      new X509Certificate(ca);
    } catch (err) {
      throw new InvalidArgumentError(
        'POWERPLANE_TLS_CLIENT_CA',
        tls.clientCaFile,
        `must hold PEM CA certificates (${(err as Error).message})`,
      );
    }
  }
  return { cert, key, ca };
}

function read(variable: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new InvalidArgumentError(variable, file, `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}
