import { describe, expect, it } from 'vitest';
import { median, nearestRankQuantile } from '../src/stats/index.js';

describe('order statistics', () => {
  it('takes the middle value, or the mean of the middle two, whatever the input order', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([8, 2, 4, 6])).toBe(5);
    expect(median([])).toBeNaN();
  });

  it('does not reorder the values it is given', () => {
    const values = [3, 1, 2];
    median(values);
    nearestRankQuantile(values, 0.9);
    expect(values).toEqual([3, 1, 2]);
  });

  it('reads a quantile by nearest rank, clamped to the values', () => {
    const hundred = Array.from({ length: 100 }, (_, i) => 100 - i); // 100 .. 1
    expect(nearestRankQuantile(hundred, 0.99)).toBe(100);
    expect(nearestRankQuantile(hundred, 0.9)).toBe(91);
    expect(nearestRankQuantile(hundred, 1)).toBe(100);
    expect(nearestRankQuantile(hundred, 0)).toBe(1);
    expect(nearestRankQuantile([], 0.5)).toBeNaN();
  });
});
