import type { Session } from './database.ts';

/**
 * Whether TimescaleDB can be used on this database, and if not, why:
 * - `usable`: preloaded and installed (or the extension is already created and the role may
 *   not read `shared_preload_libraries`, as on managed services that create it for you);
 * - `absent`: not installed on the server;
 * - `not-preloaded`: installed but not in `shared_preload_libraries`. `create extension`
 *   would end the connection with a FATAL error, so it is never run;
 * - `preload-unknown`: installed, not created, and the role may not read
 *   `shared_preload_libraries` (it needs superuser or `pg_read_all_settings`), so whether
 *   `create extension` would succeed cannot be told;
 * - `created-not-preloaded`: the extension is created in this database but the server no
 *   longer preloads it; any TimescaleDB function would end the connection, so none is called.
 */
export type TimescaleStatus = 'usable' | 'absent' | 'not-preloaded' | 'preload-unknown' | 'created-not-preloaded';

/** What the catalog says about TimescaleDB, read by {@link readTimescaleFacts}. */
export interface TimescaleFacts {
  /** The extension is created in this database (`pg_extension`). */
  readonly created: boolean;
  /** The server has the extension's files (`pg_available_extensions`). */
  readonly available: boolean;
  /** `shared_preload_libraries` as the server reports it; undefined when the role may not read it. */
  readonly preload: string | undefined;
  /** `config_file`, where the role may read it, to name in advice. */
  readonly configFile: string | undefined;
}

/** The names {@link readTimescaleFacts} looks up; tests point them at an extension and a list setting this server has. */
export interface TimescaleProbe {
  /** The extension's name. Default `timescaledb`. */
  readonly extension?: string;
  /** The setting that lists preloaded libraries. Default `shared_preload_libraries`. */
  readonly preloadSetting?: string;
}

/** The extension, and the library the server must preload for it. */
export const TIMESCALE_EXTENSION = 'timescaledb';

/**
 * Reads the facts {@link decideTimescale} needs in one query that cannot fail for lack of
 * privilege: `pg_settings` leaves out, rather than refuses, the settings a role may not read.
 */
export async function readTimescaleFacts(session: Session, probe: TimescaleProbe = {}): Promise<TimescaleFacts> {
  const extension = probe.extension ?? TIMESCALE_EXTENSION;
  const preloadSetting = probe.preloadSetting ?? 'shared_preload_libraries';
  const [row] = await session.query<{ created: boolean; available: boolean; preload: string | null; config_file: string | null }>(
    `select exists (select 1 from pg_extension where extname = $1) as created,
       exists (select 1 from pg_available_extensions where name = $1) as available,
       (select setting from pg_settings where name = $2) as preload,
       (select setting from pg_settings where name = 'config_file') as config_file`,
    [extension, preloadSetting],
  );
  return {
    created: row?.created === true,
    available: row?.available === true,
    preload: row?.preload ?? undefined,
    configFile: row?.config_file ?? undefined,
  };
}

/**
 * Decides from the facts alone, with no I/O. Preloaded means a library of
 * `shared_preload_libraries` is TimescaleDB's loader ({@link namesTimescale}).
 */
export function decideTimescale(facts: TimescaleFacts, extension = TIMESCALE_EXTENSION): TimescaleStatus {
  if (!facts.created && !facts.available) return 'absent';
  if (facts.preload === undefined) return facts.created ? 'usable' : 'preload-unknown';
  if (namesTimescale(parsePreloadLibraries(facts.preload), extension)) return 'usable';
  return facts.created ? 'created-not-preloaded' : 'not-preloaded';
}

/**
 * Splits a library list setting as PostgreSQL reads it: items separated by commas,
 * whitespace around them ignored, an item in double quotes taken literally (`""` inside is
 * one quote, and commas are part of the name), names not case-folded, empty items dropped.
 * An unterminated quote runs to the end of the text.
 */
export function parsePreloadLibraries(setting: string): string[] {
  const names: string[] = [];
  let i = 0;
  const n = setting.length;
  while (i < n) {
    while (i < n && /\s/.test(setting[i]!)) i++;
    let name = '';
    if (setting[i] === '"') {
      i++;
      while (i < n) {
        if (setting[i] === '"') {
          if (setting[i + 1] === '"') {
            name += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        name += setting[i];
        i++;
      }
      // Anything between the closing quote and the comma is not part of a valid list; skip it.
      while (i < n && setting[i] !== ',') i++;
    } else {
      while (i < n && setting[i] !== ',') name += setting[i++];
      name = name.trim();
    }
    if (name) names.push(name);
    i++; // the comma
  }
  return names;
}

/**
 * Whether one of `libraries` is the extension's loader: its file name, with any directory
 * (`$libdir/`) and a shared-library suffix removed, is exactly `extension`. A versioned
 * module (`timescaledb-2.28.0`) is not the loader.
 */
export function namesTimescale(libraries: readonly string[], extension = TIMESCALE_EXTENSION): boolean {
  return libraries.some((library) => {
    const file = library.split(/[/\\]/).at(-1) ?? '';
    return file.replace(/\.(so|dll|dylib)$/, '') === extension;
  });
}

/**
 * The `shared_preload_libraries` line that adds the extension to what `preload` lists,
 * for advice to the operator.
 */
export function preloadLine(preload: string | undefined, extension = TIMESCALE_EXTENSION): string {
  const libraries = preload === undefined ? [] : parsePreloadLibraries(preload);
  const quoted = [...libraries, extension].map((name) => (/^[A-Za-z0-9_$./-]+$/.test(name) ? name : `"${name.replaceAll('"', '""')}"`));
  return `shared_preload_libraries = '${quoted.join(',').replaceAll("'", "''")}'`;
}
