/**
 * The point types of the codec layer (SunSpec's type names, also used by flat register maps),
 * with their sizes in 16-bit registers and their SunSpec "not implemented" raw values.
 */

/** Every point type a register map or SunSpec model may declare. `pad` is a SunSpec filler. */
export const POINT_TYPES = [
  'uint16',
  'int16',
  'uint32',
  'int32',
  'acc32',
  'uint64',
  'float32',
  'enum16',
  'bitfield16',
  'bitfield32',
  'sunssf',
  'string',
  'pad',
] as const;

/** One of {@link POINT_TYPES}. */
export type PointType = (typeof POINT_TYPES)[number];

/**
 * Order of the 16-bit words of a multi-register value: `big` puts the most significant word
 * first (SunSpec, the default), `little` puts the least significant word first. Bytes inside
 * a register are always big-endian, as Modbus requires.
 */
export type WordOrder = 'big' | 'little';

/** Whether `value` names a {@link PointType}. */
export function isPointType(value: unknown): value is PointType {
  return typeof value === 'string' && (POINT_TYPES as readonly string[]).includes(value);
}

/**
 * Registers a point of `type` occupies. Strings need an explicit `length` in registers
 * (two characters each); every other type has a fixed size.
 */
export function registerCount(type: PointType, length?: number): number {
  switch (type) {
    case 'uint16':
    case 'int16':
    case 'enum16':
    case 'bitfield16':
    case 'sunssf':
    case 'pad':
      return 1;
    case 'uint32':
    case 'int32':
    case 'acc32':
    case 'float32':
    case 'bitfield32':
      return 2;
    case 'uint64':
      return 4;
    case 'string':
      return length ?? 1;
    default: {
      const never: never = type;
      throw new Error(`unknown point type ${String(never)}`);
    }
  }
}

/** Whether values of the type may be multiplied by a scale (numbers that measure something). */
export function isScalable(type: PointType): boolean {
  return (
    type === 'uint16' ||
    type === 'int16' ||
    type === 'uint32' ||
    type === 'int32' ||
    type === 'acc32' ||
    type === 'uint64' ||
    type === 'float32'
  );
}
