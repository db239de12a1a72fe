/**
 * What a row of the settings table is, and the sections of the configuration page rows
 * fall into. Kept apart from `config-settings.ts`, which imports the files of rows, so
 * those files can check their rows against it without an import cycle;
 * `config-settings.ts` re-exports all of it.
 */

/** The sections of the configuration page, in order. */
export const SETTING_GROUPS = [
  'Listener, database, logs',
  'TLS',
  'Server limits',
  'Rate limits (per caller, per replica)',
  'Telemetry ingest',
  'Control loop',
  'Retention',
  'Authentication',
  'Client commands',
] as const;

/** A section of the configuration page. */
export type SettingGroup = (typeof SETTING_GROUPS)[number];

/** A whole-number setting: the default and the inclusive range `toConfig` accepts. */
export interface IntRange {
  readonly fallback: number;
  readonly min: number;
  readonly max: number;
}

/** One environment variable. */
export interface Setting {
  /** The variable's name. */
  readonly env: string;
  /** The command-line flag that overrides it, where one does. */
  readonly flag?: string;
  readonly group: SettingGroup;
  /** What it does, for an operator (Markdown). */
  readonly meaning: string;
  /** A whole number: default and range, which `toConfig` enforces. */
  readonly int?: IntRange;
  /** The default in words (Markdown), where it is not `int.fallback` as it stands. */
  readonly default?: string;
  /** The values allowed in words (Markdown), where they are not `int`'s range. */
  readonly range?: string;
}
