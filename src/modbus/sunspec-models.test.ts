import { describe, expect, it } from 'vitest';
import { getSunSpecModel, getSunSpecPoint } from './sunspec-models.ts';

describe('SunSpec point tables', () => {
  it.each<[number, number]>([
    [1, 66],
    [701, 153],
    [704, 65],
    [713, 7],
    [802, 62],
    [203, 105],
  ])('derives model %d with length %d', (id, length) => {
    expect(getSunSpecModel(id).length).toBe(length);
  });

  it('places the WSet controls of model 704 next to each other with their scale factor', () => {
    const ena = getSunSpecPoint(704, 'WSetEna');
    expect(getSunSpecPoint(704, 'WSetMod').offset).toBe(ena.offset + 1);
    expect(getSunSpecPoint(704, 'WSet')).toMatchObject({ offset: ena.offset + 2, type: 'int32', sf: 'WSet_SF', units: 'W', access: 'RW' });
    expect(getSunSpecPoint(704, 'WSetRvrtTms').type).toBe('uint32');
  });

  it('keeps the symbols of enumerated points', () => {
    expect(getSunSpecPoint(802, 'LocRemCtl').symbols).toEqual({ REMOTE: 0, LOCAL: 1 });
  });
});
