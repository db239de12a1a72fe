/**
 * The dependency rule of src/, checked by `npm run lint:deps` and CI (docs/architecture.md
 * explains it). Layers, each importing only those below it:
 *
 *   cli, demo          the programs people run: they start the server, agents and simulators
 *   server             one port: wires the domains, the interceptors and the listener
 *   domains            audit, auth, registry, telemetry, readings, dispatch, planner, control, fleet
 *   agent, simulator   beside the domains, never imported by them: the edge agent (a gRPC
 *                      client of the API) and the simulated devices (Modbus servers)
 *   client             the `powerplane/client` package export, built on its own for
 *                      integrators: it imports only itself and gen/
 *   rpc                what handlers and interceptors share about a call
 *   cluster            replicas of one database: shard leases, fences, notifications
 *   storage, modbus    the database and the devices
 *   src/*.ts           helpers every layer may use (errors, text, ids, times, config, logger)
 *
 * Between domains only these edges exist: auth -> audit, dispatch -> {registry, planner},
 * control -> {dispatch, planner, registry, telemetry}, fleet -> {dispatch, registry}. Generated code (gen/) is imported by the RPC
 * boundary (`*.service.ts`, server/, rpc/, telemetry/wire-view.ts) and by the gRPC
 * clients (agent/, cli/, demo/, client/). Tests and their fixtures (`*.fixtures.ts`, setup shared by
 * tests) may import across folders, gen/ and test/ included; no product file imports them.
 */

/** Files the rules below are about: src/ without its tests and their fixtures, which are test code too. */
const SOURCE = { path: '^src/', pathNot: '\\.(test|fixtures)\\.ts$' };
const DOMAINS = 'audit|auth|registry|telemetry|readings|dispatch|planner|control|fleet';

/** A domain may import only itself and the domains named in `allowed`. */
function domainEdges(domain, allowed, comment) {
  return {
    name: `${domain}-domain-edges`,
    comment,
    severity: 'error',
    from: { path: `^src/${domain}/`, pathNot: SOURCE.pathNot },
    to: { path: `^src/(${DOMAINS})/`, pathNot: `^src/(${[domain, ...allowed].join('|')})/` },
  };
}

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'A cycle of imports in src/ means two modules cannot be understood, tested or moved apart.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-test-imports',
      comment: 'Product code never imports tests, their fixtures or test/.',
      severity: 'error',
      from: SOURCE,
      to: { path: ['\\.test\\.ts$', '\\.fixtures\\.ts$', '^test/'] },
    },
    {
      name: 'helpers-import-helpers',
      comment: 'src/*.ts are shared by every layer, so they import only each other.',
      severity: 'error',
      from: { path: '^src/[^/]+\\.ts$', pathNot: SOURCE.pathNot },
      to: { path: ['^src/[^/]+/', '^gen/'] },
    },
    {
      name: 'cluster-stays-below-the-domains',
      comment: 'Leases, fences and notifications between replicas serve every domain and know none of them.',
      severity: 'error',
      from: { path: '^src/cluster/', pathNot: SOURCE.pathNot },
      to: { path: ['^src/[^/]+/', '^gen/'], pathNot: '^src/(cluster|storage)/' },
    },
    {
      name: 'storage-and-modbus-stay-below',
      comment: 'storage/ and modbus/ know the database and the devices, nothing of the domains: they import only themselves and src/*.ts.',
      severity: 'error',
      from: { path: '^src/(storage|modbus)/', pathNot: SOURCE.pathNot },
      to: { path: ['^src/[^/]+/', '^gen/'], pathNot: '^src/$1/' },
    },
    {
      name: 'rpc-stays-below-the-domains',
      comment:
        'rpc/ is shared by every service and interceptor: it imports only itself, ' +
        'storage/ (the site scope type), src/*.ts and the google.rpc error details.',
      severity: 'error',
      from: { path: '^src/rpc/', pathNot: SOURCE.pathNot },
      to: { path: ['^src/[^/]+/', '^gen/'], pathNot: ['^src/(rpc|storage)/', '^gen/google/rpc/'] },
    },
    {
      name: 'domains-do-not-import-programs',
      comment: 'Domains are used by the server and the programs, never the reverse.',
      severity: 'error',
      from: { path: `^src/(${DOMAINS})/`, pathNot: SOURCE.pathNot },
      to: { path: '^src/(server|cli|demo|agent|simulator)/' },
    },
    domainEdges('audit', [], 'The audit trail stands alone: interceptors and the server write to it.'),
    domainEdges('auth', ['audit'], 'Authentication records refused calls in the audit trail.'),
    domainEdges('registry', [], 'The device registry is below every domain that targets devices.'),
    domainEdges('telemetry', [], 'Ingest writes readings; it depends on no other domain.'),
    domainEdges(
      'readings',
      [],
      'Queries read what ingest stored through storage/ (reading columns, datum layout), not through telemetry/.',
    ),
    domainEdges(
      'dispatch',
      ['registry', 'planner'],
      'Dispatch targets registered devices and stores the command sources the planner names.',
    ),
    domainEdges(
      'control',
      ['dispatch', 'planner', 'registry', 'telemetry'],
      'The control loop reads dispatch state and the registry, plans with the planner, writes through modbus/ ' +
        'and relays through the agent streams of telemetry/.',
    ),
    domainEdges(
      'fleet',
      ['dispatch', 'registry'],
      "The fleet summary adds up the registry's batteries with their control state, read by dispatch's code.",
    ),
    {
      name: 'planner-is-pure',
      comment: 'The planner is a pure function: it imports only itself and src/*.ts, no I/O, no packages.',
      severity: 'error',
      from: { path: '^src/planner/', pathNot: SOURCE.pathNot },
      to: {
        dependencyTypesNot: ['local'],
      },
    },
    {
      name: 'planner-imports-no-folder',
      comment: 'The planner is a pure function: it imports only itself and src/*.ts.',
      severity: 'error',
      from: { path: '^src/planner/', pathNot: SOURCE.pathNot },
      to: { path: ['^src/[^/]+/', '^gen/'], pathNot: '^src/planner/' },
    },
    {
      name: 'server-is-below-the-programs',
      comment: 'The server wires the domains; the CLI and the demo start it, not the reverse.',
      severity: 'error',
      from: { path: '^src/server/', pathNot: SOURCE.pathNot },
      to: { path: '^src/(cli|demo|agent|simulator)/' },
    },
    {
      name: 'agent-is-a-client',
      comment:
        'The edge agent reaches the control plane only through the API: ' +
        'it imports modbus/, gen/ and src/*.ts, never the server or a domain.',
      severity: 'error',
      from: { path: '^src/agent/', pathNot: SOURCE.pathNot },
      to: { path: '^src/[^/]+/', pathNot: '^src/(agent|modbus)/' },
    },
    {
      name: 'simulator-is-a-device',
      comment: 'The simulator is a fleet of Modbus devices: it imports only modbus/ and src/*.ts.',
      severity: 'error',
      from: { path: '^src/simulator/', pathNot: SOURCE.pathNot },
      to: { path: ['^src/[^/]+/', '^gen/'], pathNot: '^src/(simulator|modbus)/' },
    },
    {
      name: 'client-stands-alone',
      comment:
        'src/client/ is the powerplane/client package export, compiled on its own into dist/client/ for ' +
        'integrators: it imports only itself and gen/, never the server, a domain or src/*.ts.',
      severity: 'error',
      from: { path: '^src/client/', pathNot: SOURCE.pathNot },
      to: { path: '^src/', pathNot: '^src/client/' },
    },
    {
      name: 'examples-use-the-package',
      comment: 'An example is what an integrator writes: it imports powerplane/client, never src/, gen/ or test/ by path.',
      severity: 'error',
      from: { path: '^examples/' },
      to: { path: '^(src|gen|test)/' },
    },
    {
      name: 'demo-is-below-the-cli',
      comment: 'The CLI starts the demo.',
      severity: 'error',
      from: { path: '^src/demo/', pathNot: SOURCE.pathNot },
      to: { path: '^src/cli/' },
    },
    {
      name: 'gen-only-at-the-api-boundary',
      comment:
        'Generated code is imported by the RPC boundary (*.service.ts, server/, rpc/, telemetry/wire-view.ts) ' +
        'and by the gRPC clients (agent/, cli/, demo/, client/); domain logic uses its own types.',
      severity: 'error',
      from: {
        path: '^src/',
        pathNot: [SOURCE.pathNot, '\\.service\\.ts$', '^src/(server|rpc|agent|cli|demo|client)/', '^src/telemetry/wire-view\\.ts$'],
      },
      to: { path: '^gen/' },
    },
  ],
  options: {
    tsConfig: { fileName: 'tsconfig.json' },
    // Type-only imports are dependencies too: a type cycle still ties two modules together.
    tsPreCompilationDeps: true,
    doNotFollow: { path: ['node_modules', '^gen/'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
