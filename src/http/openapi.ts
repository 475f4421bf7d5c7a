// npm run openapi: writes openapi/openapi.json from the routes' zod schemas (CI checks it is fresh).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../profiles/store.js';
import { ServiceCore } from '../service/core.js';
import { openDatabase } from '../storage/db.js';
import { buildApp } from './app.js';

export async function openApiDocument(): Promise<string> {
  const core = new ServiceCore({ db: openDatabase(':memory:'), threads: 1 });
  try {
    const app = await buildApp({ core });
    await app.ready();
    const doc = JSON.stringify(app.swagger(), null, 2);
    await app.close();
    return `${doc}\n`;
  } finally {
    await core.close();
  }
}

export const OPENAPI_PATH = join(PACKAGE_ROOT, 'openapi', 'openapi.json');

if (process.argv[1]?.endsWith('http/openapi.js')) {
  const doc = await openApiDocument();
  mkdirSync(join(PACKAGE_ROOT, 'openapi'), { recursive: true });
  writeFileSync(OPENAPI_PATH, doc);
  process.stdout.write(`wrote ${OPENAPI_PATH}\n`);
}
