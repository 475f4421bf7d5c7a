import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../src/http/app.js';
import { ServiceCore } from '../src/service/core.js';
import { openDatabase } from '../src/storage/db.js';
import { RunRepository } from '../src/storage/runs.js';
import { scratchDir } from './scratch.js';

const LLAMA = 'h100-64gb/llama-3.1-8b-instruct';

describe('a crash loses no acknowledged run', () => {
  it('keeps every acknowledged run after SIGKILL in the middle of a stream of requests', async () => {
    const dir = scratchDir('loraplan-kill-');
    const dbPath = join(dir, 'runs.db');
    const port = 18000 + Math.floor(Math.random() * 1000);
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve'], {
      env: {
        ...process.env,
        PORT: String(port),
        HOST: '127.0.0.1',
        LORAPLAN_DB: dbPath,
        LOG_LEVEL: 'error',
        LORAPLAN_THREADS: '1',
      },
      stdio: 'ignore',
    });
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 100; i++) {
      const ok = await fetch(`${base}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const acknowledged: string[] = [];
    const stream = (async () => {
      for (let i = 0; ; i++) {
        try {
          const res = await fetch(`${base}/v1/simulate`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({
              profile: LLAMA,
              config: { maxLoras: 8, maxCpuLoras: 8, maxLoraRank: 8 },
              workload: { rates: [0.1], ranks: [8] },
              durationSeconds: 30,
              seed: i + 1,
            }),
          });
          if (res.ok) acknowledged.push(res.headers.get('loraplan-run-id')!);
        } catch {
          return; // the server is gone
        }
      }
    })();
    // Killed mid-stream once several runs are acknowledged (a loaded machine starts slowly).
    for (let waited = 0; acknowledged.length < 5 && waited < 45_000; waited += 50)
      await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGKILL');
    await stream;
    expect(acknowledged.length).toBeGreaterThan(3);
    const db = openDatabase(dbPath);
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      const runs = new RunRepository(db);
      for (const id of acknowledged) expect(runs.get(id), id).not.toBeNull();
    } finally {
      db.close();
    }
  }, 90_000);
});

describe('under load', () => {
  // How fast it answers is for `npm run bench:http`; here, that twin work never holds it up.
  it('answers /healthz while two twin searches run, all before either search ends', async () => {
    const core = new ServiceCore({ db: openDatabase(':memory:'), threads: 2 });
    const app = await buildApp({ core });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    try {
      let searchesEnded = 0;
      const search = (rates: number[]) =>
        fetch(`${base}/v1/recommend`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            profile: LLAMA,
            workload: { rates, ranks: [16] },
            method: 'twin',
            search: { concurrent: [16, 64, 128, 256], parallel: [8, 16, 32] },
          }),
        }).then((res) => {
          searchesEnded++;
          return res;
        });
      const searches = Promise.all([search([0.3, 0.1]), search([0.2, 0.05])]);
      await new Promise((r) => setTimeout(r, 300)); // both searches are simulating by then
      const endedBeforeHealth: number[] = [];
      for (let i = 0; i < 10; i++) {
        const res = await fetch(`${base}/healthz`);
        expect(res.status).toBe(200);
        endedBeforeHealth.push(searchesEnded);
      }
      const responses = await searches;
      expect(responses.every((r) => r.status === 200)).toBe(true);
      expect(endedBeforeHealth).toEqual(Array(10).fill(0));
    } finally {
      await app.close();
      await core.close();
    }
  }, 120_000);
});

describe("the image's start command", () => {
  it('serves with node bin/loraplan.js serve and exits cleanly on SIGTERM', async () => {
    const dir = scratchDir('loraplan-start-');
    const port = 19000 + Math.floor(Math.random() * 1000);
    const child = spawn(process.execPath, ['bin/loraplan.js', 'serve'], {
      env: {
        ...process.env,
        PORT: String(port),
        HOST: '127.0.0.1',
        LORAPLAN_DB: join(dir, 'db', 'loraplan.db'),
        LOG_LEVEL: 'error',
        LORAPLAN_THREADS: '1',
      },
      stdio: 'ignore',
    });
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => resolve(code)),
    );
    let healthy = false;
    for (let i = 0; i < 100 && !healthy; i++) {
      healthy = await fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (!healthy) await new Promise((r) => setTimeout(r, 200));
    }
    expect(healthy).toBe(true);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(200);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 60_000);
});
