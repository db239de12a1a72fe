import { randomBytes } from 'node:crypto';
import os from 'node:os';

/**
 * A replica id for a process that was given none: `<hostname>-<pid>-<6 hex digits>`. The
 * host and process say where it runs (in logs, `powerplane.replicas`, the owner of a
 * lease); the random part makes a restarted process, or a container reusing a pid, a new
 * replica, so it never renews a lease its predecessor held. The hostname is reduced to the
 * characters `POWERPLANE_REPLICA_ID` allows, so a generated id passes the same check.
 */
export function generateReplicaId(hostname = os.hostname(), pid = process.pid): string {
  const host =
    hostname
      .replace(/[^A-Za-z0-9._-]/g, '-')
      .replace(/^[^A-Za-z0-9]+/, '')
      .slice(0, 100) || 'replica';
  return `${host}-${pid}-${randomBytes(3).toString('hex')}`;
}
