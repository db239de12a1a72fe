/**
 * The fleet file as JSON lines: one device per line in the API's JSON (Connect JSON of
 * `powerplane.v1.Device`, the shape `devices list --json` prints), blank lines skipped.
 * `id`, `active` and `createTime` may be present (export writes them); the server
 * ignores them, as for CreateDevice.
 */
import { fromJson, toJsonString, type JsonValue } from '@bufbuild/protobuf';
import { DeviceSchema, RegisterProfile, type Device } from '../../gen/powerplane/v1/devices_pb.ts';
import { DeviceFileError, digestOf, type DeviceFile, type FileProblem, type RegisterMaps, type SourceDevice } from './device-file.ts';

/**
 * Reads fleet JSON lines into devices. A custom device without a `registerMap` takes the
 * `--register-map` map of its type. Throws {@link DeviceFileError} listing every bad line.
 */
export function devicesFromJsonl(text: string, options: { readonly file: string; readonly registerMaps: RegisterMaps }): DeviceFile {
  const devices: SourceDevice[] = [];
  const problems: FileProblem[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, k) => {
    const line = k + 1;
    const source = k === 0 ? raw.replace(/^\uFEFF/, '') : raw;
    if (source.trim() === '') return;
    let json: JsonValue;
    try {
      json = JSON.parse(source) as JsonValue;
    } catch (err) {
      problems.push({ where: `line ${line}`, message: `is not JSON (${(err as Error).message})` });
      return;
    }
    let device: Device;
    try {
      device = fromJson(DeviceSchema, json);
    } catch (err) {
      problems.push({ where: `line ${line}`, message: (err as Error).message });
      return;
    }
    const modbus = device.spec.case === 'bess' || device.spec.case === 'meter' ? device.spec.value.modbus : undefined;
    const typeMap = device.spec.case === 'bess' ? options.registerMaps.bess : options.registerMaps.meter;
    if (modbus?.registerProfile === RegisterProfile.CUSTOM && !modbus.registerMap && typeMap) modbus.registerMap = typeMap;
    devices.push({ line, device });
  });
  if (problems.length > 0) throw new DeviceFileError(options.file, problems);
  return {
    devices,
    digest: digestOf(text),
    locate: (line, field) => `line ${line}${field ? `, field ${field}` : ''}`,
  };
}

/** Writes devices as fleet JSON lines that {@link devicesFromJsonl} reads back. */
export function devicesToJsonl(devices: readonly Device[]): string {
  return devices.map((d) => `${toJsonString(DeviceSchema, d)}\n`).join('');
}
