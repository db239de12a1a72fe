/**
 * Relay mode: the control plane sends setpoints down the agent's stream for batteries it
 * cannot reach itself, and the agent writes them with the same setpoint writer the control
 * plane uses (arming the device's reversion timeout, read-back verification, heartbeat).
 * Each setpoint gets exactly one outcome: verified, or not with the reason.
 *
 * A relayed setpoint is written only before its `expire_time`, and held (heartbeated) only
 * until then: the control plane refreshes a setpoint it wants kept by sending it again
 * before it expires. When the latest setpoint of a battery expires, the relay stops that
 * battery's writer, so the battery falls back on its own after its reversion timeout —
 * the same failsafe as when the control plane itself goes quiet. A setpoint with `release`
 * set hands the battery back to its own control (0 kW, setpoint disabled, no heartbeat).
 *
 * Fencing: each setpoint carries the epoch of the lease the control plane sent it under,
 * which grows with every change of the replica controlling the site. The relay remembers
 * the highest epoch seen for each battery, across restarts when given an epoch file
 * (relay-epochs.ts; the agent keeps it in its spool directory), and refuses a setpoint with
 * a lower one, so a replica that lost its lease but has not noticed yet
 * cannot overwrite the new owner's setpoint. Epoch 0 comes from a control plane without
 * leases: it is applied and leaves the remembered epoch as it is.
 */
import { timestampDate, timestampNow } from '@bufbuild/protobuf/wkt';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { RelaySetpoint, SetpointOutcomeSchema } from '../../gen/powerplane/v1/telemetry_pb.ts';
import type { Logger } from '../logger.ts';
import { createSetpointWriter, type SetpointWriter } from '../modbus/setpoint-writer.ts';
import type { SetpointEvent } from '../modbus/types.ts';
import { registerProfileOf, type AgentDeviceConfig } from './agent-config.ts';
import { loadRelayEpochs, saveRelayEpochs } from './relay-epochs.ts';

/** An outcome to send up the stream. */
export type RelayOutcome = MessageInitShape<typeof SetpointOutcomeSchema>;

/** Options of {@link createRelay}. */
export interface RelayOptions {
  /** The site's devices; only batteries can be relayed to. */
  devices: readonly AgentDeviceConfig[];
  /** Receives every outcome. */
  onOutcome: (outcome: RelayOutcome) => void;
  log?: Logger;
  /** Clock, ms since the epoch; default Date.now. */
  now?: () => number;
  /** Per-request Modbus timeout of the writers, ms; default 1000. */
  requestTimeoutMs?: number;
  /** Where the highest epoch per battery is kept across restarts; none: in memory only. */
  epochFile?: string;
}

/** A running relay. */
export interface Relay {
  /** Handles one relayed setpoint; its outcome is reported through `onOutcome`. */
  handle(setpoint: RelaySetpoint): void;
  /** Stops every writer (the batteries revert after their timeouts). Idempotent. */
  stop(): Promise<void>;
}

interface DeviceRelay {
  writer: SetpointWriter;
  /** setpoint id by writer seq, for setpoints without an outcome yet. */
  waiting: Map<number, string>;
  expiry?: NodeJS.Timeout;
}

/** Creates a relay; writers are created per battery on its first setpoint. */
export function createRelay(options: RelayOptions): Relay {
  const now = options.now ?? Date.now;
  const log = options.log;
  const byId = new Map(options.devices.map((d) => [d.deviceId, d]));
  const relays = new Map<string, DeviceRelay>();
  /** The highest epoch seen per battery; one entry per configured battery at most. */
  const epochs = options.epochFile ? loadRelayEpochs(options.epochFile, new Set(byId.keys()), log) : new Map<string, bigint>();
  let stopped = false;

  const report = (setpointId: string, verified: boolean, reason = ''): void => {
    if (verified) log?.info({ setpointId }, 'relayed setpoint verified');
    else log?.warn({ setpointId, reason }, 'relayed setpoint not applied');
    options.onOutcome({ setpointId, verified, reason, time: timestampNow() });
  };

  /** Raises a battery's floor, on disk before the setpoint is written. */
  const raiseEpoch = (deviceId: string, epoch: bigint): void => {
    epochs.set(deviceId, epoch);
    if (!options.epochFile) return;
    try {
      saveRelayEpochs(options.epochFile, epochs);
    } catch (err) {
      // The floor still holds in memory; only a restart before the next successful save loses it.
      log?.error({ err, file: options.epochFile }, 'cannot store the relay epoch floor; it holds until the agent restarts');
    }
  };

  const onEvent =
    (deviceId: string) =>
    (e: SetpointEvent): void => {
      const r = relays.get(deviceId);
      const setpointId = r?.waiting.get(e.seq);
      if (!r || setpointId === undefined) return;
      if (e.phase === 'verified') {
        r.waiting.delete(e.seq);
        report(setpointId, true);
      } else if (e.phase === 'dropped' || (e.phase === 'failed' && !e.willRetry)) {
        r.waiting.delete(e.seq);
        report(setpointId, false, e.reason ?? e.phase);
      }
    };

  const release = async (deviceId: string, why: string): Promise<void> => {
    const r = relays.get(deviceId);
    if (!r) return;
    relays.delete(deviceId);
    clearTimeout(r.expiry);
    log?.info({ deviceId, why }, 'relay stops holding the battery; it reverts after its timeout');
    await r.writer.stop();
    for (const [, setpointId] of r.waiting) report(setpointId, false, why);
  };

  return {
    handle(sp) {
      const device = byId.get(sp.deviceId.toLowerCase());
      if (stopped) return report(sp.setpointId, false, 'agent is stopping');
      if (!device) return report(sp.setpointId, false, `device ${sp.deviceId} is not configured on this agent`);
      if (device.kind !== 'bess') return report(sp.setpointId, false, `device ${sp.deviceId} is a meter, not a battery`);
      // Before anything else about the message: a stale owner's setpoint is never written.
      const seen = epochs.get(device.deviceId) ?? 0n;
      if (sp.epoch < seen && sp.epoch !== 0n)
        return report(sp.setpointId, false, `stale epoch ${sp.epoch} (epoch ${seen} has been seen for device ${device.deviceId})`);
      if (sp.epoch > seen) raiseEpoch(device.deviceId, sp.epoch);
      if (!sp.expireTime) return report(sp.setpointId, false, 'expire_time is required');
      if (!sp.release && !Number.isFinite(sp.targetPowerKw))
        return report(sp.setpointId, false, `target_power_kw must be finite (got ${sp.targetPowerKw})`);
      const expiresAt = timestampDate(sp.expireTime).getTime();
      const left = expiresAt - now();
      if (left <= 0) return report(sp.setpointId, false, `expired ${-left} ms before it could be written`);
      let r = relays.get(device.deviceId);
      if (!r) {
        let writer: SetpointWriter;
        try {
          writer = createSetpointWriter({
            deviceKey: device.deviceId,
            endpoint: device.endpoint,
            profile: registerProfileOf(device),
            reversionTimeoutS: device.reversionTimeoutS,
            heartbeatIntervalMs: device.heartbeatIntervalMs,
            onEvent: onEvent(device.deviceId),
            ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
            ...(log ? { log } : {}),
          });
        } catch (err) {
          // A register map without a control section can be polled but not written.
          return report(
            sp.setpointId,
            false,
            `device ${sp.deviceId} cannot take setpoints (${err instanceof Error ? err.message : String(err)})`,
          );
        }
        r = { writer, waiting: new Map() };
        relays.set(device.deviceId, r);
      }
      const seq = sp.release ? r.writer.clear() : r.writer.setTarget(sp.targetPowerKw);
      r.waiting.set(seq, sp.setpointId);
      clearTimeout(r.expiry);
      r.expiry = setTimeout(() => {
        void release(device.deviceId, `setpoint ${sp.setpointId} expired`);
      }, left);
      log?.info(
        {
          deviceId: device.deviceId,
          setpointId: sp.setpointId,
          targetPowerKw: sp.targetPowerKw,
          release: sp.release,
          epoch: String(sp.epoch),
          expiresInMs: left,
        },
        'relaying setpoint',
      );
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all([...relays.keys()].map((id) => release(id, 'agent stopped')));
    },
  };
}
