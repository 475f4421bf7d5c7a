import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { migrate, MIGRATIONS_DIR, openDatabase } from '../src/storage/db.js';
import {
  INLINE_BODY_LIMIT_BYTES,
  RunRepository,
  startRetention,
  type NewRun,
} from '../src/storage/runs.js';
import { scratchDir } from './scratch.js';

const DAY = 86_400_000;
const run = (over: Partial<NewRun> = {}): NewRun => ({
  kind: 'simulate',
  profile: 'p',
  method: null,
  verdict: 'ok',
  summary: { throughputTokensPerSecond: 100, starving: false },
  request: { small: true },
  response: { ok: 1 },
  twinVersion: 't',
  modelVersion: null,
  durationMs: 1,
  ...over,
});

/** A repository whose clock the test moves. */
function repository() {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const db = openDatabase(':memory:');
  const runs = new RunRepository(db, () => new Date(now));
  return { db, runs, advance: (ms: number) => (now += ms) };
}

describe('stored runs', () => {
  it("lists summaries with the answer's key numbers, never the bodies", async () => {
    const { runs } = repository();
    await runs.insert(
      run({ kind: 'recommend', summary: { concurrentAdapters: 96, parallelAdapters: 32 } }),
    );
    const [listed] = runs.list({ limit: 10 }).runs;
    expect(listed).toMatchObject({
      kind: 'recommend',
      verdict: 'ok',
      summary: { concurrentAdapters: 96, parallelAdapters: 32 },
    });
    expect(listed).not.toHaveProperty('request');
    expect(listed).not.toHaveProperty('response');
  });

  it('stores a large body once however many runs carry it, and returns it whole', async () => {
    const { runs } = repository();
    const samples = Array.from({ length: 2000 }, (_, i) => [100 + i, 50]);
    const request = { workload: { requestLengths: { kind: 'empirical', samples } } };
    expect(JSON.stringify(request).length).toBeGreaterThan(INLINE_BODY_LIMIT_BYTES);
    const ids = [];
    for (let i = 0; i < 20; i++) ids.push((await runs.insert(run({ request }))).id);
    expect(runs.blobCount()).toBe(1);
    expect(runs.get(ids[7]!)!.request).toEqual(request);
  });

  it('deletes runs past the age limit or beyond the newest maxRows, then unreferenced blobs', async () => {
    const { runs, advance } = repository();
    const big = { samples: Array.from({ length: 2000 }, (_, i) => i) };
    await runs.insert(run({ request: big })); // old, carries the only blob
    await runs.insert(run());
    advance(40 * DAY);
    for (let i = 0; i < 5; i++) await runs.insert(run());
    let deleted = 0;
    for (let step; (step = await runs.pruneStep({ maxAgeDays: 30, maxRows: 3 })) > 0;)
      deleted += step;
    expect(runs.count()).toBe(3); // 2 too old, then 2 more beyond the newest 3
    expect(runs.blobCount()).toBe(0);
    expect(deleted).toBe(5); // 4 runs and 1 blob
  });

  it('prunes in the background in small steps until nothing is left', async () => {
    const { runs, advance } = repository();
    for (let i = 0; i < 1200; i++) await runs.insert(run());
    advance(31 * DAY);
    await runs.insert(run());
    const retention = startRetention(runs, { maxAgeDays: 30, maxRows: 100_000 }, 60_000, (e) => {
      throw e;
    });
    await retention.idle();
    retention.stop();
    expect(runs.count()).toBe(1);
  });

  it('gives runs stored before summaries existed their key numbers when migrating', () => {
    const dir = scratchDir('loraplan-migrate-');
    const only001 = join(dir, 'migrations');
    mkdirSync(only001);
    copyFileSync(join(MIGRATIONS_DIR, '001_runs.sql'), join(only001, '001_runs.sql'));
    const path = join(dir, 'old.db');
    const recommendation = {
      concurrentAdapters: 128,
      parallelAdapters: 16,
      maxLoraRank: 16,
      throughputTokensPerSecond: 5,
      offeredTokensPerSecond: 6,
      starving: false,
    };
    const old = new Database(path);
    migrate(old, only001);
    old
      .prepare(
        `INSERT INTO runs (id, seq, kind, profile, method, status, request, response, twin_version, model_version, created_at, duration_ms)
         VALUES ('a', 1, 'recommend', 'p', 'auto', 'ok', '{}', ?, 't', null, '2026-01-01T00:00:00Z', 1)`,
      )
      .run(JSON.stringify({ recommendation }));
    old.close();
    const db = openDatabase(path);
    const [listed] = new RunRepository(db).list({ limit: 1 }).runs;
    // The summary holds exactly the recommendation's key numbers.
    expect(listed!.summary).toEqual(recommendation);
    db.close();
  });
});

describe('the commit thread (a database file)', () => {
  const fileRepository = () => {
    const db = openDatabase(join(scratchDir('loraplan-commit-'), 'runs.db'));
    return { db, runs: new RunRepository(db) };
  };

  it("answers an insert only once its run is readable on the caller's connection", async () => {
    const { db, runs } = fileRepository();
    try {
      // 50 inserts in one turn of the event loop: all are acknowledged, each is on disk when it is.
      const records = await Promise.all(
        Array.from({ length: 50 }, (_, i) => runs.insert(run({ durationMs: i }))),
      );
      for (const r of records) expect(runs.get(r.id)!.durationMs).toBe(r.durationMs);
      // seq follows insertion order: the newest listed first is the last inserted.
      expect(runs.list({ limit: 1 }).runs[0]!.id).toBe(records[49]!.id);
    } finally {
      await runs.close();
      db.close();
    }
  });

  it('rejects the inserts of a batch that fails, and acknowledges none of them', async () => {
    const { db, runs } = fileRepository();
    try {
      const first = await runs.insert(run());
      db.exec('ALTER TABLE runs RENAME TO runs_elsewhere');
      const failed = await Promise.allSettled([runs.insert(run()), runs.insert(run())]);
      expect(failed.map((f) => f.status)).toEqual(['rejected', 'rejected']);
      expect(String((failed[0] as PromiseRejectedResult).reason)).toMatch(/no such table: runs/);
      db.exec('ALTER TABLE runs_elsewhere RENAME TO runs');
      expect(runs.count()).toBe(1);
      expect(runs.get(first.id)).not.toBeNull();
    } finally {
      await runs.close();
      db.close();
    }
  });

  it('close waits for the inserts already made, then a reopened database holds them all', async () => {
    const { db, runs } = fileRepository();
    const pending = Array.from({ length: 20 }, () => runs.insert(run()));
    await runs.close();
    const ids = (await Promise.all(pending)).map((r) => r.id);
    const reopened = openDatabase(db.name);
    db.close();
    try {
      const again = new RunRepository(reopened);
      for (const id of ids) expect(again.get(id)).not.toBeNull();
    } finally {
      reopened.close();
    }
  });
});

describe('retention settings', () => {
  it('come from the environment with documented defaults, and a bad value names its variable', async () => {
    const { configFromEnv } = await import('../src/http/server.js');
    expect(configFromEnv({}).retention).toEqual({ maxAgeDays: 30, maxRows: 100_000 });
    expect(
      configFromEnv({ LORAPLAN_RUN_RETENTION_DAYS: '7', LORAPLAN_RUN_MAX_ROWS: '5000' }).retention,
    ).toEqual({ maxAgeDays: 7, maxRows: 5000 });
    expect(() => configFromEnv({ LORAPLAN_RUN_MAX_ROWS: '-3' })).toThrow(/LORAPLAN_RUN_MAX_ROWS/);
  });
});
