'use strict';
// The fleet page's script, served from its own URL: the server's content security policy
// allows no inline script and no inline style, so markup built here carries classes, never
// `style` attributes or event handler attributes.
// The page reads the same API everything else uses, as Connect JSON over plain HTTP.
// Connect JSON leaves out zero values, so an absent number is 0 where the field is not optional.
// The bearer token comes from the URL fragment (`/#token=…`, never sent to the server as
// part of the URL, removed from the address bar at once) or the form, and is kept for this
// tab only (sessionStorage).
const TOKEN_KEY = 'powerplane-token';
const fromFragment = new URLSearchParams(location.hash.slice(1)).get('token');
if (fromFragment) {
  sessionStorage.setItem(TOKEN_KEY, fromFragment);
  history.replaceState(null, '', location.pathname);
}
document.getElementById('login').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById('token').value.trim());
  document.getElementById('login').hidden = true; // the next refresh (every 2 s) uses it
});
const call = async (service, method, body) => {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const res = await fetch(`/powerplane.v1.${service}/${method}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (res.status === 401 || res.status === 403) document.getElementById('login').hidden = false;
  if (!res.ok) throw new Error(`${method}: ${json.message || res.status}`);
  return json;
};
const short = (source) => (source || 'COMMAND_SOURCE_UNSPECIFIED').replace('COMMAND_SOURCE_', '');
const phase = (p) => (p || '').replace('SETPOINT_PHASE_', '').toLowerCase();
const fmt = (n, digits = 1) => (n === undefined || n === null ? '—' : Number(n).toFixed(digits));
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const events = new Map();
const COLORS = 6; // classes c0…c5 in fleet-page.css
const COLUMNS = ['battery', 'SoE %', 'setpoint kW', 'reported kW', 'intended', 'reported', 'last setpoint', 'why'];
const TABLE_HEAD = `<thead><tr>${COLUMNS.map((c) => `<th>${c}</th>`).join('')}</tr></thead>`;

// A caller bound to sites lists each of its sites (a list without a site is refused to a
// caller bound to several); one bound to none lists the whole fleet at once.
async function listBatteries() {
  const caller = await call('TokenService', 'GetCaller', {});
  const sites = caller.sites && caller.sites.length ? caller.sites : [''];
  const devices = [];
  for (const site of sites) {
    let pageToken = '';
    for (let page = 0; page < 50; page++) {
      const res = await call('DeviceRegistryService', 'ListDevices', {
        site,
        type: 'DEVICE_TYPE_BESS',
        active: true,
        pageSize: 1000,
        pageToken,
      });
      devices.push(...(res.devices || []));
      pageToken = res.nextPageToken || '';
      if (!pageToken) break;
    }
  }
  return devices;
}

function chart(readings, names) {
  const end = Date.now(),
    start = end - 3600_000;
  const byDevice = new Map();
  for (const r of readings) {
    if (r.soePercent === undefined) continue;
    if (!byDevice.has(r.deviceId)) byDevice.set(r.deviceId, []);
    byDevice.get(r.deviceId).push([Date.parse(r.time), r.soePercent]);
  }
  let i = 0,
    lines = '',
    legend = '';
  for (const [id, points] of byDevice) {
    const color = `c${i++ % COLORS}`;
    const path = points.map(([t, soe]) => `${(((t - start) / 3600_000) * 1000).toFixed(1)},${(100 - soe).toFixed(2)}`).join(' ');
    lines += `<polyline class="${color}" fill="none" stroke-width="1.5" vector-effect="non-scaling-stroke" points="${path}"/>`;
    legend += `<span class="${color}">■</span> ${esc(names.get(id) || id)} `;
  }
  return `<div class="chart"><svg viewBox="0 0 1000 100" preserveAspectRatio="none" aria-label="state of energy, last hour">${lines}</svg>
    <div class="legend">State of energy, last hour (0–100 %): ${legend || 'no readings yet'}</div></div>`;
}

async function render() {
  const batteries = await listBatteries();
  const sites = [...new Set(batteries.map((b) => b.site))].sort();
  const names = new Map(batteries.map((b) => [b.id, b.name]));
  const html = [];
  for (const site of sites) {
    const ids = batteries.filter((b) => b.site === site).map((b) => b.id);
    const [control, latest, history] = await Promise.all([
      call('DispatchService', 'GetControlState', { site }),
      call('ReadingsService', 'GetLatestBessState', { site }),
      call('ReadingsService', 'ListBessReadings', {
        deviceIds: ids,
        range: { startTime: new Date(Date.now() - 3600_000).toISOString(), endTime: new Date(Date.now() + 60_000).toISOString() },
        pageSize: 10000,
      }),
    ]);
    const reading = new Map((latest.states || []).map((r) => [r.deviceId, r]));
    const siteEvents = events.get(site) || [];
    for (const s of control.states || []) {
      const e = s.lastEvent;
      if (e && !siteEvents.some((x) => x.setpointId === e.setpointId && x.phase === e.phase)) siteEvents.unshift(e);
    }
    events.set(site, siteEvents.slice(0, 30));
    const rows = (control.states || []).map((s) => {
      const r = reading.get(s.deviceId) || {};
      const intended = short(s.intendedSource);
      return `<tr data-device="${esc(s.deviceId)}">
        <td>${esc(names.get(s.deviceId) || s.deviceId)}</td>
        <td class="num soe">${fmt(r.soePercent)}</td>
        <td class="num target">${fmt(s.targetPowerKw ?? 0)}</td>
        <td class="num reported">${fmt(r.targetPowerKw)}</td>
        <td class="source ${intended}">${intended}</td>
        <td class="${s.sourceMismatch ? 'mismatch' : ''}">${short(s.reportedSource)}${s.sourceMismatch ? ' ≠' : ''}</td>
        <td>${s.lastEvent ? `${phase(s.lastEvent.phase)} ${fmt(s.lastEvent.targetPowerKw ?? 0)} kW` : '—'}</td>
        <td>${esc(s.reason || '')}</td></tr>`;
    });
    const eventItems = (events.get(site) || []).map((e) => {
      const device = esc(names.get(e.deviceId) || e.deviceId);
      const why = e.reason ? ` (${esc(e.reason)})` : '';
      const what = `${phase(e.phase)} ${fmt(e.targetPowerKw ?? 0)} kW ${short(e.commandSource)}${why}`;
      return `<li>${esc(new Date(e.time).toLocaleTimeString())} ${device}: ${what}</li>`;
    });
    html.push(`<section class="site" data-site="${esc(site)}"><h2>${esc(site)}</h2>
      <table>${TABLE_HEAD}
      <tbody>${rows.join('')}</tbody></table>
      ${chart(history.bessReadings || [], names)}
      <ul class="events">${eventItems.join('')}</ul>
    </section>`);
  }
  document.getElementById('sites').innerHTML = html.join('') || '<p>No active batteries registered yet.</p>';
}

async function loop() {
  const status = document.getElementById('status');
  try {
    await render();
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    status.className = '';
  } catch (err) {
    status.textContent = `cannot reach the control plane: ${err.message}`;
    status.className = 'error';
  }
  setTimeout(loop, 2000);
}
loop();
