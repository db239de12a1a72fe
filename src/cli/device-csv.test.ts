import { create, type JsonObject, type MessageInitShape } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { DeviceSchema, DeviceType, ModbusAccessSchema, RegisterProfile, type Device } from '../../gen/powerplane/v1/devices_pb.ts';
import { columnOf, CSV_COLUMNS, devicesFromCsv, devicesToCsv } from './device-csv.ts';
import { DeviceFileError, repeatedNames, type RegisterMaps } from './device-file.ts';
import { devicesFromJsonl, devicesToJsonl } from './device-jsonl.ts';

const HEADER = CSV_COLUMNS.join(',');
const BESS_ROW = 'bess-1,site-a,bess,10.0.0.11,1502,3,sunspec,250,240,500,10,90,4,50,60,false';
const METER_ROW = 'meter-1,site-a,meter,10.0.0.10,,,,,,,,,,,,';
const MAP: JsonObject = { name: 'acme', points: [{ name: 'soePercent', address: 100, type: 'uint16' }] };
const OTHER_MAP: JsonObject = { name: 'other', points: [] };

function read(text: string, registerMaps: RegisterMaps = {}, files: Record<string, JsonObject> = {}) {
  return devicesFromCsv(text, {
    file: 'fleet.csv',
    registerMaps,
    readRegisterMap: (name) => {
      const map = files[name];
      if (!map) throw new Error(`${name}: cannot be read (ENOENT)`);
      return map;
    },
  });
}

/** The problems a read of `text` reports, as `where: message` lines. */
function problems(text: string, registerMaps: RegisterMaps = {}): string[] {
  try {
    read(text, registerMaps);
  } catch (err) {
    expect(err).toBeInstanceOf(DeviceFileError);
    return (err as DeviceFileError).problems.map((p) => `${p.where}: ${p.message}`);
  }
  throw new Error('read without a problem');
}

/** A device as the registry stores it: every default filled in. */
function stored(overrides: Omit<MessageInitShape<typeof DeviceSchema>, '$typeName'> = {}): Device {
  return create(DeviceSchema, {
    id: '9b2a4a55-0000-4000-8000-000000000001',
    name: 'bess-1',
    site: 'site-a',
    type: DeviceType.BESS,
    active: true,
    createTime: { seconds: 1_700_000_000n, nanos: 0 },
    spec: {
      case: 'bess',
      value: {
        ratedChargePowerKw: 250.5,
        ratedDischargePowerKw: 240,
        capacityKwh: 500,
        minSoePercent: 10,
        maxSoePercent: 90,
        inverterBlockCount: 4,
        rampRateKwPerS: 0.1,
        reversionTimeoutS: 30,
        modbus: {
          endpoint: { host: '10.0.0.11', port: 502, unitId: 1 },
          registerProfile: RegisterProfile.SUNSPEC,
          pollingIntervalMs: 1000,
        },
      },
    },
    ...overrides,
  });
}

/** The fields an import sends (the server ignores id, active and create time). */
const sent = (d: Device) => ({ ...d, id: '', active: false, createTime: undefined });

describe('devicesFromCsv', () => {
  it('reads a battery and a meter into the API messages, each with its line', () => {
    const file = read(`${HEADER}\n${BESS_ROW}\n${METER_ROW}\n`);
    expect(file.devices.map((d) => d.line)).toEqual([2, 3]);
    const [bess, meter] = file.devices.map((d) => d.device);
    expect(bess).toMatchObject({ name: 'bess-1', site: 'site-a', type: DeviceType.BESS });
    expect(bess!.spec.case === 'bess' && bess!.spec.value).toMatchObject({
      ratedChargePowerKw: 250,
      ratedDischargePowerKw: 240,
      capacityKwh: 500,
      minSoePercent: 10,
      maxSoePercent: 90,
      inverterBlockCount: 4,
      rampRateKwPerS: 50,
      reversionTimeoutS: 60,
      modbus: { endpoint: { host: '10.0.0.11', port: 1502, unitId: 3 }, registerProfile: RegisterProfile.SUNSPEC, relay: false },
    });
    // Empty cells are the API's zero values, which the server reads as its defaults.
    expect(meter!.spec.case === 'meter' && meter!.spec.value.modbus).toMatchObject({
      endpoint: { host: '10.0.0.10', port: 0, unitId: 0 },
      registerProfile: RegisterProfile.SUNSPEC,
      pollingIntervalMs: 0,
    });
    expect(meter!.metadata).toBeUndefined();
  });

  it('takes the columns in any order, leaves out absent ones and trims unquoted cells', () => {
    const file = read('type , site,name,host,relay\nbess, a ,"  b  ",h,TRUE\n');
    const [device] = file.devices.map((d) => d.device);
    expect(device).toMatchObject({ name: '  b  ', site: 'a', type: DeviceType.BESS });
    expect(device!.spec.case === 'bess' && device!.spec.value.modbus?.relay).toBe(true);
  });

  it('reads the extra columns: polling interval, metadata, and a custom map from a file or inline', () => {
    const text =
      'name,site,type,host,profile,register_map,polling_interval_ms,metadata\n' +
      'a,s,bess,h,custom,maps/acme.json,500,"{""location"": ""WLCE""}"\n' +
      `b,s,meter,h,,"${JSON.stringify(OTHER_MAP).replaceAll('"', '""')}",,\n`;
    const [a, b] = read(text, {}, { 'maps/acme.json': MAP }).devices.map((d) => d.device);
    expect(a!.spec.value!.modbus).toMatchObject({ registerProfile: RegisterProfile.CUSTOM, registerMap: MAP, pollingIntervalMs: 500 });
    expect(a!.metadata).toEqual({ location: 'WLCE' });
    // A map without a profile makes the device custom.
    expect(b!.spec.value!.modbus).toMatchObject({ registerProfile: RegisterProfile.CUSTOM, registerMap: OTHER_MAP });
  });

  it('gives custom devices without a map of their own the --register-map map of their type', () => {
    const text = 'name,site,type,host,profile\na,s,bess,h,custom\nb,s,meter,h,custom\nc,s,meter,h,\n';
    const [a, b, c] = read(text, { bess: MAP, meter: OTHER_MAP }).devices.map((d) => d.device);
    expect(a!.spec.value!.modbus?.registerMap).toEqual(MAP);
    expect(b!.spec.value!.modbus?.registerMap).toEqual(OTHER_MAP);
    expect(c!.spec.value!.modbus?.registerProfile).toBe(RegisterProfile.SUNSPEC);
    expect(c!.spec.value!.modbus).not.toHaveProperty('registerMap');
  });

  it.each([
    ['name,site,type,host,colour\n', ['line 1: unknown column "colour" (columns: name,site']],
    ['name,site,type,host,port,port\n', ['line 1: column port appears twice']],
    ['name,type,port\n', ['line 1: missing columns site, host']],
    ['', ['line 1: the header row is missing']],
    [`${HEADER}\na,b"c\n`, ['line 2: a quote inside an unquoted cell']],
    ['name,site,type,host\na,s,bess\n', ['line 2: has 3 cells, the header 4']],
    ['name,site,type,host\na,s,battery,h\n', ['line 2, column type: must be bess or meter (got "battery")']],
    ['name,site,type,host,port\na,s,meter,h,50a\n', ['line 2, column port: must be a number (got "50a")']],
    ['name,site,type,host,port\na,s,meter,h,0x1f6\n', ['line 2, column port: must be a number (got "0x1f6")']],
    ['name,site,type,host,unit_id\na,s,meter,h,1.5\n', ['line 2, column unit_id: must be a whole number not below 0 (got "1.5")']],
    ['name,site,type,host,capacity_kwh\na,s,bess,h,Infinity\n', ['line 2, column capacity_kwh: must be a number (got "Infinity")']],
    ['name,site,type,host,capacity_kwh\na,s,meter,h,100\n', ['line 2, column capacity_kwh: is for batteries; leave it empty for a meter']],
    ['name,site,type,host,relay\na,s,bess,h,yes\n', ['line 2, column relay: must be true, false or empty for false (got "yes")']],
    ['name,site,type,host,profile\na,s,bess,h,modbus\n', ['line 2, column profile: must be sunspec, tesla-powerpack, custom or empty']],
    ['name,site,type,host,profile\na,s,bess,h,custom\n', ['line 2, column profile: custom needs a register map']],
    ['name,site,type,host,profile,register_map\na,s,bess,h,sunspec,m.json\n', ['line 2, column register_map: is for the custom profile']],
    ['name,site,type,host,register_map\na,s,bess,h,missing.json\n', ['line 2, column register_map: missing.json: cannot be read (ENOENT)']],
    ['name,site,type,host,register_map\na,s,bess,h,{nope\n', ['line 2, column register_map: is not JSON']],
    ['name,site,type,host,metadata\na,s,bess,h,[1]\n', ['line 2, column metadata: must hold a JSON object (got an array)']],
  ])('names the line and column of a problem in %j', (text, expected) => {
    const found = problems(text);
    expect(found).toHaveLength(expected.length);
    found.forEach((p, i) => expect(p).toContain(expected[i]));
  });

  it('lists the problems of every row at once, and says nothing was imported', () => {
    const text = 'name,site,type,host,port\na,s,bess,h,x\nb,s,bess,h,1\nc,s,tank,h,2\n';
    let error: DeviceFileError | undefined;
    try {
      read(text);
    } catch (err) {
      error = err as DeviceFileError;
    }
    expect(error?.message).toBe(
      'fleet.csv: 2 problems, nothing imported\n' +
        '  line 2, column port: must be a number (got "x")\n' +
        '  line 4, column type: must be bess or meter (got "tank")',
    );
  });
});

describe('columnOf', () => {
  it.each([
    ['name', 'name'],
    ['site', 'site'],
    ['type', 'type'],
    ['bess', 'type'],
    ['metadata.bess', 'metadata'],
    ['bess.min_soe_percent', 'min_soe_percent'],
    ['bess.rated_charge_power_kw', 'rated_charge_power_kw'],
    ['bess.modbus.endpoint.host', 'host'],
    ['meter.modbus.endpoint.port', 'port'],
    ['bess.modbus.endpoint.unit_id', 'unit_id'],
    ['meter.modbus.register_profile', 'profile'],
    ['bess.modbus.register_map.points[2].type', 'register_map'],
    ['bess.modbus.register_map', 'register_map'],
    ['meter.modbus.relay', 'relay'],
    ['bess.modbus.polling_interval_ms', 'polling_interval_ms'],
    ['bess.modbus.nothing', undefined],
    ['bess.colour', undefined],
  ])('puts %s in column %s', (field, column) => {
    expect(columnOf(field)).toBe(column);
  });
});

describe('devicesToCsv', () => {
  const fleet = [
    stored(),
    stored({
      name: 'meter, "north"',
      type: DeviceType.METER,
      spec: {
        case: 'meter',
        value: {
          modbus: {
            endpoint: { host: 'm.local', port: 502, unitId: 7 },
            registerProfile: RegisterProfile.SUNSPEC,
            pollingIntervalMs: 1000,
          },
        },
      },
    }),
  ];

  it("writes exactly the issue's columns when no device needs more", () => {
    const text = devicesToCsv(fleet);
    expect(text.split('\n')[0]).toBe(HEADER);
    expect(text.split('\n')[1]).toBe('bess-1,site-a,bess,10.0.0.11,502,1,sunspec,250.5,240,500,10,90,4,0.1,30,false');
    expect(text.split('\n')[2]).toBe('"meter, ""north""",site-a,meter,m.local,502,7,sunspec,,,,,,,,,');
  });

  it('writes what devicesFromCsv reads back into the same devices, extra columns included', () => {
    const custom = stored({ name: 'custom', metadata: { location: 'WLCE', tags: ['a', 'b'] } });
    if (custom.spec.case === 'bess')
      custom.spec.value.modbus = create(ModbusAccessSchema, {
        endpoint: { host: 'acme.local', port: 502, unitId: 1 },
        registerProfile: RegisterProfile.CUSTOM,
        registerMap: MAP,
        pollingIntervalMs: 250,
        relay: true,
      });
    const devices = [...fleet, custom];
    const text = devicesToCsv(devices);
    expect(text.split('\n')[0]).toBe(`${HEADER},register_map,polling_interval_ms,metadata`);
    expect(read(text).devices.map((d) => d.device)).toEqual(devices.map(sent));
  });
});

describe('JSON lines', () => {
  it('reads devices in the API JSON, each with its line, and writes what it reads back', () => {
    const devices = [stored(), stored({ name: 'bess-2', metadata: { a: 1 } })];
    const text = `\n${devicesToJsonl(devices)}\n`;
    const file = devicesFromJsonl(text, { file: 'fleet.jsonl', registerMaps: {} });
    expect(file.devices.map((d) => d.line)).toEqual([2, 3]);
    expect(file.devices.map((d) => d.device)).toEqual(devices);
    expect(file.locate(3, 'bess.capacity_kwh')).toBe('line 3, field bess.capacity_kwh');
  });

  it('names each bad line, and gives a custom device without a map the map of its type', () => {
    const custom = JSON.stringify({
      name: 'c',
      site: 's',
      type: 'DEVICE_TYPE_METER',
      meter: { modbus: { endpoint: { host: 'h' }, registerProfile: 'REGISTER_PROFILE_CUSTOM' } },
    });
    const file = devicesFromJsonl(custom, { file: 'f', registerMaps: { meter: MAP } });
    expect(file.devices[0]!.device.spec.value!.modbus?.registerMap).toEqual(MAP);
    let error: DeviceFileError | undefined;
    try {
      devicesFromJsonl(`${custom}\n{"name": \n{"name": "x", "colour": "red"}\n`, { file: 'f', registerMaps: {} });
    } catch (err) {
      error = err as DeviceFileError;
    }
    expect(error?.problems.map((p) => p.where)).toEqual(['line 2', 'line 3']);
    expect(error?.problems[0]!.message).toContain('is not JSON');
    expect(error?.problems[1]!.message).toContain('colour');
  });
});

describe('repeatedNames', () => {
  it('names every device whose site and name an earlier line has', () => {
    const file = read('name,site,type,host\na,s,meter,h\na,t,meter,h\nb,s,meter,h\na,s,bess,h\n');
    expect(repeatedNames(file)).toEqual([{ where: 'line 5, column name', message: 'site "s", name "a" repeats line 2' }]);
  });
});
