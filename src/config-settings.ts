/**
 * Every environment variable Powerplane reads, in one table: its name, the flag that
 * overrides it, its default, its range and what it means. `readEnv()` reads exactly these,
 * `toConfig()` checks whole numbers against the ranges here, and `npm run docs:config`
 * writes `docs/configuration.md` from this table, so the three never disagree. The rows
 * are in `config-settings.server.ts` (listener, TLS, server limits, authentication, client
 * commands) and `config-settings.data.ts` (rate limits, telemetry ingest, control loop);
 * this file puts them together.
 */
import { DATA_SETTINGS } from './config-settings.data.ts';
import { SERVER_SETTINGS } from './config-settings.server.ts';
import type { IntRange, Setting } from './config-settings.types.ts';

export { SETTING_GROUPS, type IntRange, type Setting, type SettingGroup } from './config-settings.types.ts';

/**
 * A key both files of rows define: the spread below would keep only the second row, so
 * there must be none, and the constant under it fails to compile naming the key if there is.
 */
type SharedKey = keyof typeof SERVER_SETTINGS & keyof typeof DATA_SETTINGS;
const _noSharedKey: [SharedKey] extends [never] ? true : SharedKey = true;

/** Every variable, keyed by its name in {@link Env}. */
export const SETTINGS = { ...SERVER_SETTINGS, ...DATA_SETTINGS } as const satisfies Record<string, Setting>;

/** The environment variables Powerplane reads, by their names in {@link SETTINGS}; unset ones are undefined. */
export type Env = { readonly [K in keyof typeof SETTINGS]?: string };

/** The key of a whole-number setting. */
export type IntSettingKey = {
  [K in keyof typeof SETTINGS]: (typeof SETTINGS)[K] extends { int: IntRange } ? K : never;
}[keyof typeof SETTINGS];
