import type { Client } from '@connectrpc/connect';
import { DispatchService } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { ReadingsService } from '../../gen/powerplane/v1/readings_pb.ts';
import { CommandSource } from '../../gen/powerplane/v1/telemetry_pb.ts';
import type { ScenarioContext } from './scenario.ts';

/** The API clients the view reads through. */
export interface ViewClients {
  readonly dispatch: Client<typeof DispatchService>;
  readonly readings: Client<typeof ReadingsService>;
}

const pad = (text: string, width: number) => (text.length >= width ? text.slice(0, width) : text + ' '.repeat(width - text.length));
const num = (n: number | undefined, width: number) => pad(n === undefined ? '—' : n.toFixed(1), width);
const source = (s: CommandSource) => (CommandSource[s] ?? 'UNSPECIFIED').replace('UNSPECIFIED', '—');

/**
 * Draws one line per battery: state of energy, the setpoint Powerplane holds it to, the
 * power the battery reports, who controls it and why, under a heading per site with its
 * latest dispatch instruction. Everything comes from the public API.
 */
export async function renderView(clients: ViewClients, sites: ScenarioContext['sites']): Promise<string> {
  const lines: string[] = [];
  for (const { site } of sites) {
    const [control, latest, dispatches] = await Promise.all([
      clients.dispatch.getControlState({ site }),
      clients.readings.getLatestBessState({ site }),
      clients.dispatch.listDispatches({ site, pageSize: 1 }),
    ]);
    const last = dispatches.instructions[0];
    const command = last?.interval?.command;
    const lastText = last ? `${command?.case === 'powerKw' ? `${command.value} kW` : 'action'} (${last.requestId})` : 'none';
    lines.push(`${site}   last dispatch: ${lastText}`);
    lines.push(`  ${pad('battery', 10)}${pad('SoE %', 8)}${pad('setpoint kW', 13)}${pad('reported kW', 13)}${pad('source', 10)}why`);
    const reading = new Map(latest.states.map((r) => [r.deviceId, r]));
    for (const state of control.states) {
      const r = reading.get(state.deviceId);
      const columns = [
        pad(state.deviceId.slice(0, 8), 10),
        num(r?.soePercent, 8),
        num(state.targetPowerKw, 13),
        num(r?.targetPowerKw, 13),
        pad(source(state.intendedSource), 10),
        state.reason,
        state.sourceMismatch ? ' (battery reports otherwise)' : '',
      ];
      lines.push(`  ${columns.join('')}`);
    }
  }
  return lines.join('\n');
}
