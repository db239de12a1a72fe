import { toConfig, type Config } from '../../src/config.ts';
import { startServer, type Server } from '../../src/server/server.ts';
import { createTestDatabase, silentLog, type Engine, type TestDatabase } from './databases.ts';

/** A control plane on 127.0.0.1 port 0 over a fresh database, for one test file. */
export interface TestServer {
  readonly server: Server;
  readonly baseUrl: string;
  readonly testDatabase: TestDatabase;
  stop(): Promise<void>;
}

/** Starts a server on `engine`; `overrides` adjust the config built from defaults. */
export async function startTestServer(engine: Engine, overrides: Partial<Config> = {}): Promise<TestServer> {
  const testDatabase = await createTestDatabase(engine);
  const database = await testDatabase.open({ migrated: false });
  const config = { ...toConfig({ listen: '127.0.0.1:0', auth: 'off' }), database: testDatabase.config, ...overrides };
  const server = await startServer(config, { log: silentLog, database });
  return {
    server,
    baseUrl: `http://127.0.0.1:${server.address.port}`,
    testDatabase,
    async stop() {
      await server.stop();
      await testDatabase.drop();
    },
  };
}
