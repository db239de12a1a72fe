/**
 * The relay's fencing floor on disk: the highest lease epoch seen per battery, kept in the
 * agent's spool directory so that a restarted agent still refuses a stale owner's setpoint.
 * Without it, the first setpoint after a restart would be accepted whatever its epoch, and
 * a replica that lost its lease while the agent restarted could overwrite the new owner.
 *
 * The file is JSON, `{"<device id>": "<epoch>", …}`, rewritten whole (a temporary file,
 * fsync'd, then renamed over the old one) each time an epoch rises. Epochs rise only when
 * a site changes owner, so this is a few small writes per failover, not per setpoint.
 * It is written before the setpoint that raised the epoch is, so a crash between the two
 * never leaves a written setpoint with a lower floor on disk.
 *
 * A missing file is an empty floor (a new agent). A file that cannot be read or parsed is
 * logged as an error and ignored: refusing every setpoint would leave the batteries to
 * their own fallback for good, where starting with an empty floor only loses the fence
 * until the next setpoint of the current owner.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import type { Logger } from '../logger.ts';

/** The name of the epoch file in the spool directory. */
export const RELAY_EPOCHS_FILE = 'relay-epochs.json';

/**
 * Reads the stored floor, keeping only the devices in `known` (a battery removed from the
 * agent's configuration leaves its entry behind until the next write).
 */
export function loadRelayEpochs(file: string, known: ReadonlySet<string>, log?: Logger): Map<string, bigint> {
  const epochs = new Map<string, bigint>();
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      log?.error({ err, file }, 'cannot read the relay epoch file; starting without it');
    return epochs;
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object');
    for (const [device, value] of Object.entries(parsed as Record<string, unknown>)) {
      if (typeof value !== 'string' || !/^\d{1,19}$/.test(value)) throw new Error(`epoch of ${device} is not a decimal string`);
      if (known.has(device)) epochs.set(device, BigInt(value));
    }
  } catch (err) {
    log?.error({ err, file }, 'the relay epoch file is damaged; starting without it');
    return new Map();
  }
  return epochs;
}

/** Writes the floor durably: the whole map to a temporary file, fsync'd, renamed over `file`. */
export function saveRelayEpochs(file: string, epochs: ReadonlyMap<string, bigint>): void {
  const body = JSON.stringify(Object.fromEntries([...epochs].map(([device, epoch]) => [device, epoch.toString()])));
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, body);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}
