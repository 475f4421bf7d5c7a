// One service per route test file, as the server builds it: an in-memory store (unless a path is
// given), the pool on two threads, built before the file's tests and closed after them.
import { afterAll, beforeAll } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { ServiceCore } from '../../src/service/core.js';
import { openDatabase } from '../../src/storage/db.js';

export type App = Awaited<ReturnType<typeof buildApp>>;

/** Registers the file's set-up and tear-down; `ready` receives the app and its core. */
export function withService(ready: (app: App, core: ServiceCore) => void, dbPath = ':memory:') {
  let app: App | undefined;
  let core: ServiceCore | undefined;
  beforeAll(async () => {
    core = new ServiceCore({ db: openDatabase(dbPath), threads: 2 });
    app = await buildApp({ core });
    await app.ready();
    ready(app, core);
  });
  afterAll(async () => {
    await app?.close();
    await core?.close();
  });
}
