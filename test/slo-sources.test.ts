import { describe, expect, it } from 'vitest';
import type { LatencyEstimate } from '../src/latency/index.js';
import type { MeasuredPoint } from '../src/validation/recommend.js';
import {
  ruleOutcome,
  SLO_RULES,
  type JudgedPair,
  type P99s,
} from '../src/validation/slo-sources.js';

const point = (c: number, throughput: number, itlP99Ms: number, starving = false) =>
  ({
    c,
    p: c,
    ok: true,
    throughput,
    starving,
    ratio: starving ? 0.8 : 1,
    requestShare: starving ? 0.8 : 1,
    ttftP99Ms: 500,
    itlP99Ms,
  }) satisfies MeasuredPoint;

/** A prediction of `ms` whose 90% bound is `margin` times it. */
const estimate = (ms: number, margin: number): LatencyEstimate => ({
  ms,
  lowMs: ms / margin,
  highMs: ms * margin,
  sloMs: ms * margin,
});

const pair = (
  real: MeasuredPoint,
  twinStarving: boolean,
  itlMs: number,
  margin = 1.2,
): JudgedPair => ({
  real,
  twinStarving,
  ttftP99: estimate(real.ttftP99Ms, 1),
  itlP99: estimate(itlMs, margin),
});

const rule = (start: string) => SLO_RULES.find((r) => r.label.startsWith(start))!;

describe('where the throughput an SLO recommendation gives up comes from', () => {
  // p99 ITL <= 100 ms. Real: 64 adapters at 90 ms (3000 tok/s, the real best), 32 at 60 ms (1500),
  // 128 at 150 ms (misses). The model predicts 64 at 88 ms, whose x1.2 bound (106 ms) steps it
  // back to 32; the twin also wrongly starves 64 in one case.
  const measured = [point(32, 1500, 60), point(64, 3000, 90), point(128, 6000, 150)];
  const meets = (p: P99s) => p.itlP99Ms <= 100;
  const service = (twinStarves64: boolean) => ({
    measured,
    meets,
    pairs: [
      pair(measured[0]!, false, 58),
      pair(measured[1]!, twinStarves64, 88),
      pair(measured[2]!, false, 140),
    ],
  });

  it("charges the bound's margin, not the prediction, where the margin steps back", () => {
    const cases = [service(false)];
    // The service steps back to 32 adapters: half the real best's throughput.
    expect(ruleOutcome(cases, rule("the service's rule"))).toEqual({
      judged: 1,
      kept: 1,
      meanLostPct: 50,
    });
    // The point estimate (88 ms) keeps 64 adapters.
    expect(ruleOutcome(cases, rule("the twin's verdict, the point")).meanLostPct).toBe(0);
    // A perfect centre with the same margin: 90 ms x 1.2 = 108 ms, over 100, still steps back.
    expect(ruleOutcome(cases, rule('the real verdict, the real p99 times')).meanLostPct).toBe(50);
  });

  it("charges the twin's verdict where it starves the real best", () => {
    const cases = [service(true)];
    expect(ruleOutcome(cases, rule("the twin's verdict, the real p99")).meanLostPct).toBe(50);
    expect(ruleOutcome(cases, rule('the real verdict, the real p99 times')).meanLostPct).toBe(50);
  });

  it('counts a pick that really misses as a miss, not as throughput given up', () => {
    // The model puts 128 adapters at 70 ms: the point estimate picks it, and it really misses.
    const cases = [
      { measured, meets, pairs: [pair(measured[0]!, false, 58), pair(measured[2]!, false, 70)] },
    ];
    expect(ruleOutcome(cases, rule("the twin's verdict, the point"))).toEqual({
      judged: 1,
      kept: 0,
      meanLostPct: NaN,
    });
  });
});
