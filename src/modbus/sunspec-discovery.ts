/**
 * SunSpec discovery over Modbus: find the `SunS` marker at 40000, 0 or 50000, walk the chain
 * of model id/length headers to the 0xFFFF end marker, and read models as named values.
 */
import type { PointValue } from './codec.ts';
import { DeviceProfileError, ModbusExceptionError } from './errors.ts';
import { type CodecPoint, decodePoints, planReads, type ReadResult } from './map-codec.ts';
import type { ModbusClient } from './modbus-client.ts';
import { SUNSPEC_MODELS, type SunSpecModel } from './sunspec-models.ts';

/** Where SunSpec devices put the `SunS` marker, in the order they are tried. */
export const SUNSPEC_BASE_ADDRESSES = [40000, 0, 50000] as const;

/** One model found on a device: its id, the address of its `ID` register and its length `L`. */
export interface SunSpecModelInstance {
  id: number;
  address: number;
  length: number;
}

/** What discovery found. */
export interface SunSpecMap {
  /** Address of the `SunS` marker. */
  baseAddress: number;
  /** Every model in chain order, known to Powerplane or not. */
  models: SunSpecModelInstance[];
  /** The first instance of model `id`, if present. */
  find(id: number): SunSpecModelInstance | undefined;
}

/**
 * Discovers the SunSpec models of the device behind `client`. Tries each base address
 * (exceptions 02/03 or a different marker mean "not here"), walks at most `maxModels`
 * (default 64) headers, and throws {@link DeviceProfileError} when no marker is found or the
 * chain runs off the register space.
 */
export async function discoverSunSpec(client: ModbusClient, options: { maxModels?: number } = {}): Promise<SunSpecMap> {
  const maxModels = options.maxModels ?? 64;
  for (const base of SUNSPEC_BASE_ADDRESSES) {
    let marker: number[];
    try {
      marker = await client.readHoldingRegisters(base, 2);
    } catch (err) {
      if (err instanceof ModbusExceptionError && (err.code === 2 || err.code === 3)) continue;
      throw err;
    }
    if (marker[0] !== 0x5375 || marker[1] !== 0x6e53) continue;
    const models: SunSpecModelInstance[] = [];
    let address = base + 2;
    for (let i = 0; i < maxModels; i++) {
      const [id = 0xffff, length = 0] = await client.readHoldingRegisters(address, 2);
      if (id === 0xffff) {
        return { baseAddress: base, models, find: (want) => models.find((m) => m.id === want) };
      }
      models.push({ id, address, length });
      address += 2 + length;
      if (address > 0xfffe) break;
    }
    throw new DeviceProfileError(`SunSpec model chain at ${base} has no end marker within ${maxModels} models`);
  }
  throw new DeviceProfileError(`no SunSpec marker at ${SUNSPEC_BASE_ADDRESSES.join(', ')}`);
}

/** The codec points of `model` placed at `instance`, optionally only `names` and their scale factors. */
export function sunSpecCodecPoints(model: SunSpecModel, instance: SunSpecModelInstance, names?: readonly string[]): CodecPoint[] {
  const wanted = names ? new Set(names) : undefined;
  if (wanted)
    for (const n of [...wanted]) {
      const sf = model.byName.get(n)?.sf;
      if (sf) wanted.add(sf);
    }
  return model.points
    .filter((p) => (!wanted || wanted.has(p.name)) && p.offset + p.size <= instance.length + 2)
    .map((p) => ({
      name: p.name,
      address: instance.address + p.offset,
      type: p.type,
      length: p.size,
      ...(p.sf ? { scaleFactorPoint: p.sf } : {}),
    }));
}

/**
 * Reads model `instance` (all points, or only `names` with their scale factors) and returns
 * scaled values by point name; not-implemented points and points with an unknown scale factor
 * are `undefined`.
 */
export async function readSunSpecModel(
  client: ModbusClient,
  instance: SunSpecModelInstance,
  names?: readonly string[],
): Promise<Record<string, PointValue>> {
  const model = SUNSPEC_MODELS.get(instance.id);
  if (!model) throw new DeviceProfileError(`SunSpec model ${instance.id} is not known to Powerplane`);
  const points = sunSpecCodecPoints(model, instance, names);
  const results: ReadResult[] = [];
  for (const block of planReads(points)) {
    results.push({ ...block, registers: await client.readHoldingRegisters(block.address, block.count) });
  }
  return decodePoints(points, results);
}

/** Register span one request may cover (the Modbus limit for function 3). */
const MAX_READ = 125;

/**
 * Reads several models of one device with as few requests as possible: the wanted points of
 * every model (each with its scale factors) are planned together, so neighbouring models share
 * a request and any gap that fits in one 125-register request is read through instead of split
 * (a round trip costs far more than the extra registers; every register between two models of
 * the chain belongs to a model, so the read stays inside the device's map). `wanted` lists
 * model ids with their point names (`undefined`: every point). Returns scaled values by model
 * id, then point name, as {@link readSunSpecModel}; models the device lacks are absent.
 */
export async function readSunSpecModels(
  client: ModbusClient,
  map: SunSpecMap,
  wanted: ReadonlyArray<readonly [id: number, names?: readonly string[]]>,
): Promise<Map<number, Record<string, PointValue>>> {
  const found: Array<{ id: number; points: CodecPoint[] }> = [];
  for (const [id, names] of wanted) {
    const model = SUNSPEC_MODELS.get(id);
    if (!model) throw new DeviceProfileError(`SunSpec model ${id} is not known to Powerplane`);
    const instance = map.find(id);
    // Point names repeat across models (W, SoC, W_SF), so each gets its model id as prefix.
    if (instance)
      found.push({
        id,
        points: sunSpecCodecPoints(model, instance, names).map((p) => ({
          ...p,
          name: `${id}/${p.name}`,
          ...(p.scaleFactorPoint ? { scaleFactorPoint: `${id}/${p.scaleFactorPoint}` } : {}),
        })),
      });
  }
  const all = found.flatMap((f) => f.points);
  const results: ReadResult[] = [];
  for (const block of planReads(all, MAX_READ, MAX_READ)) {
    results.push({ ...block, registers: await client.readHoldingRegisters(block.address, block.count) });
  }
  const values = decodePoints(all, results);
  return new Map(
    found.map((f) => [f.id, Object.fromEntries(f.points.map((p) => [p.name.slice(p.name.indexOf('/') + 1), values[p.name]]))]),
  );
}
