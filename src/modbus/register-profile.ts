/**
 * From how a device is reached (its profile name and, for a custom profile, its register
 * map as stored) to the {@link RegisterProfile} the poller and the setpoint writer take.
 * The control plane (a device's registry entry) and the edge agent (a device of its site
 * config) both go through {@link registerProfileFor}, so a device is read and written the
 * same way whichever of them reaches it.
 */
import { parseRegisterMap } from './register-map.ts';
import type { RegisterProfile } from './types.ts';

/** The register profiles a device may name: discovered SunSpec, the built-in Tesla-style map, or its own map. */
export const REGISTER_PROFILE_NAMES = ['sunspec', 'tesla-powerpack', 'custom'] as const;

/** One of {@link REGISTER_PROFILE_NAMES}. */
export type RegisterProfileName = (typeof REGISTER_PROFILE_NAMES)[number];

/** The part of a device's Modbus access that decides its register layout. */
export interface RegisterProfileAccess {
  readonly registerProfile: RegisterProfileName;
  /** The flat register map (JSON as stored) of a `custom` device; ignored for the other profiles. */
  readonly registerMap?: unknown;
}

/**
 * The register profile of a device. A custom map is validated here: a bad or missing one
 * throws `RegisterMapError` naming the field path inside the map (`points[2].type`).
 */
export function registerProfileFor(access: RegisterProfileAccess): RegisterProfile {
  switch (access.registerProfile) {
    case 'sunspec':
      return { kind: 'sunspec' };
    case 'tesla-powerpack':
      return { kind: 'tesla-powerpack' };
    case 'custom':
      return { kind: 'custom', map: parseRegisterMap(access.registerMap) };
    default: {
      const unknown: never = access.registerProfile;
      throw new RangeError(`registerProfile must be one of ${REGISTER_PROFILE_NAMES.join(' | ')} (got ${String(unknown)})`);
    }
  }
}
