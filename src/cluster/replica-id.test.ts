import { describe, expect, it } from 'vitest';
import { REPLICA_ID_PATTERN } from '../config.ts';
import { generateReplicaId } from './replica-id.ts';

describe('generateReplicaId', () => {
  it('is the host, the pid and six random hex digits', () => {
    expect(generateReplicaId('node-a', 4242)).toMatch(/^node-a-4242-[0-9a-f]{6}$/);
  });

  it('differs between two calls in one process, so a restart is a new replica', () => {
    expect(generateReplicaId('h', 1)).not.toBe(generateReplicaId('h', 1));
  });

  it.each(['', '-', 'host with spaces', 'ünïcode.example', '.leading-dot', 'h'.repeat(300)])(
    'makes an id POWERPLANE_REPLICA_ID would accept from hostname %j',
    (hostname) => {
      expect(generateReplicaId(hostname, 99_999)).toMatch(REPLICA_ID_PATTERN);
    },
  );
});
