import { afterEach, describe, expect, it } from 'vitest';
import { createModbusClient } from '../../src/modbus/modbus-client.ts';
import { discoverSunSpec } from '../../src/modbus/sunspec-discovery.ts';
import { cachedSunSpecMap, forgetSunSpecMaps, rememberSunSpecMap, sunSpecMapKey } from '../../src/modbus/sunspec-map-cache.ts';
import { SUNSPEC_BASE } from '../../src/simulator/sunspec-image.ts';
import { startSimulator, type Simulator } from '../../src/simulator/simulator.ts';

/** The remembered SunSpec maps, checked against a simulated battery over Modbus TCP. */
describe('remembered SunSpec maps', () => {
  let sim: Simulator | undefined;
  afterEach(async () => {
    forgetSunSpecMaps();
    await sim?.stop();
  });

  it('are used when every model asked for is there with the same header, and never when one was missing at discovery', async () => {
    sim = await startSimulator({ bess: 1 });
    const dev = sim.bess[0]!;
    const client = createModbusClient({ endpoint: dev.endpoint, timeoutMs: 500 });
    try {
      const map = await discoverSunSpec(client);
      const key = sunSpecMapKey('battery-1', dev.endpoint);
      rememberSunSpecMap(key, map);
      expect(await cachedSunSpecMap(client, key, [704, 802])).toBe(map);

      // Discovery then found no model 802 (the device offered none): the map is not trusted
      // for a writer that wants it, since the device may offer it now.
      const without802 = { ...map, find: (id: number) => (id === 802 ? undefined : map.find(id)) };
      rememberSunSpecMap(key, without802);
      const reads = dev.readsAt(SUNSPEC_BASE);
      expect(await cachedSunSpecMap(client, key, [704, 802])).toBeUndefined();
      // Forgotten: asked again, nothing is remembered, and nothing was read to find that out.
      rememberSunSpecMap(sunSpecMapKey('battery-2', dev.endpoint), map);
      expect(await cachedSunSpecMap(client, key, [704])).toBeUndefined();
      expect(dev.readsAt(SUNSPEC_BASE)).toBe(reads);
    } finally {
      await client.close();
    }
  });
});
