// What a refresh reads: the fleet summary with a row per battery, one call whatever the
// caller's binding. A fleet larger than one summary may list (the server refuses
// `include_batteries`) is read as before that existed: the summary alone, the batteries
// from ListDevices (every 30 s) and their state from GetControlState and
// GetLatestBessState, 1000 batteries a call.
import { allPages, call, inChunks } from './api.js';

const BATCH = 1000;
const DEVICES_MS = 30_000;

/** The summary call with the batteries' rows. */
export function summaryWithBatteries() {
  return call('FleetService', 'GetFleetSummary', { includeBatteries: true });
}

/** Whether `err` is the server refusing to list every battery in one summary. */
function tooManyBatteries(err) {
  return err && err.code === 'invalid_argument' && String(err.detail).startsWith('include_batteries');
}

/**
 * Reads the fleet into `state` (summary, devices, control, latest), from `early` (a
 * {@link summaryWithBatteries} call already made) when given. `listSites()` names the
 * sites to list devices of, one call each, on the large-fleet path.
 */
export async function readFleet(state, early, listSites) {
  if (!state.large) {
    const summary = await (early || summaryWithBatteries()).catch((err) => {
      if (tooManyBatteries(err)) return undefined;
      throw err;
    });
    if (summary) return storeSummary(state, summary);
    state.large = true;
  }
  const summaryCall = call('FleetService', 'GetFleetSummary', {});
  summaryCall.catch(() => undefined); // awaited below; this only keeps a failure meanwhile from going unhandled
  const devicesDue = Date.now() - state.devicesAt > DEVICES_MS;
  if (devicesDue) {
    state.devices = new Map((await listDevices(listSites())).map((d) => [d.id, d]));
    state.devicesAt = Date.now();
  }
  const ids = [...state.devices.keys()];
  const [summary, control, latest] = await Promise.all([
    summaryCall,
    inChunks(
      ids,
      BATCH,
      (deviceIds) => call('DispatchService', 'GetControlState', { deviceIds }),
      (r) => r.states,
    ),
    inChunks(
      ids,
      BATCH,
      (deviceIds) => call('ReadingsService', 'GetLatestBessState', { deviceIds }),
      (r) => r.states,
    ),
  ]);
  state.summary = summary;
  state.control = new Map(control.map((c) => [c.deviceId, c]));
  state.latest = new Map(latest.map((r) => [r.deviceId, r]));
  // A battery registered or retired since the last listing: list again at the next refresh.
  // Connect JSON leaves out a zero count.
  if (((summary.totals && summary.totals.batteryCount) || 0) !== ids.length && !devicesDue) state.devicesAt = 0;
}

/** Keeps a summary with battery rows as the devices, control states and latest readings the page draws. */
function storeSummary(state, summary) {
  const devices = new Map();
  const control = new Map();
  const latest = new Map();
  for (const b of summary.batteries || []) {
    const bess = { minSoePercent: b.minSoePercent || 0, maxSoePercent: b.maxSoePercent || 0 };
    devices.set(b.deviceId, { id: b.deviceId, name: b.name, site: b.site, bess });
    control.set(b.deviceId, b.control || {});
    if (b.soePercent !== undefined || b.reportedPowerKw !== undefined) {
      latest.set(b.deviceId, { soePercent: b.soePercent, targetPowerKw: b.reportedPowerKw });
    }
  }
  Object.assign(state, { summary, devices, control, latest });
}

async function listDevices(sites) {
  const devices = [];
  for (const site of sites) {
    devices.push(
      ...(await allPages(
        (pageToken) =>
          call('DeviceRegistryService', 'ListDevices', { site, type: 'DEVICE_TYPE_BESS', active: true, pageSize: 1000, pageToken }),
        (r) => r.devices,
      )),
    );
  }
  return devices;
}
