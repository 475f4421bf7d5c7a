import { renderSvg } from '../charts/svg.js';
import type { RecommendResponse } from '../recommend/index.js';

/**
 * Throughput against concurrent adapters, one line per parallel setting, starving points marked
 * and the chosen pair highlighted: the recommendation as an operator would rather see it.
 */
export function recommendationChart(response: RecommendResponse): Promise<string> {
  const rec = response.recommendation;
  const points = response.evaluated
    .filter((e) => e.simulated)
    .map((e) => ({
      concurrent: e.concurrentAdapters,
      throughput: Math.round(e.throughputTokensPerSecond),
      offered: Math.round(e.offeredTokensPerSecond),
      parallel: `${e.parallelAdapters} slots`,
      verdict: !e.feasible
        ? 'infeasible'
        : e.starving
          ? 'starves'
          : e.sloViolated
            ? 'breaks SLO'
            : 'serves',
    }));
  const chosen = [
    { concurrent: rec.concurrentAdapters, throughput: Math.round(rec.throughputTokensPerSecond) },
  ];
  return renderSvg({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `Recommended: --max-cpu-loras=${rec.concurrentAdapters} --max-loras=${rec.parallelAdapters} --max-lora-rank=${rec.maxLoraRank}`,
      subtitle: `${response.method}: ${Math.round(rec.throughputTokensPerSecond)} of ${Math.round(rec.offeredTokensPerSecond)} tok/s offered`,
    },
    width: 520,
    height: 300,
    layer: [
      {
        data: { values: points },
        mark: { type: 'line', point: false, opacity: 0.6 },
        encoding: {
          x: {
            field: 'concurrent',
            type: 'quantitative',
            title: 'concurrent adapters (--max-cpu-loras)',
            scale: { type: 'log', base: 2 },
          },
          y: { field: 'throughput', type: 'quantitative', title: 'throughput (tok/s)' },
          color: {
            field: 'parallel',
            type: 'nominal',
            title: 'parallel (--max-loras)',
            sort: { field: 'concurrent' },
          },
        },
      },
      {
        data: { values: points },
        mark: { type: 'point', filled: true, size: 70 },
        encoding: {
          x: { field: 'concurrent', type: 'quantitative', scale: { type: 'log', base: 2 } },
          y: { field: 'throughput', type: 'quantitative' },
          color: { field: 'parallel', type: 'nominal' },
          shape: {
            field: 'verdict',
            type: 'nominal',
            title: 'verdict',
            scale: {
              domain: ['serves', 'starves', 'breaks SLO', 'infeasible'],
              range: ['circle', 'cross', 'triangle', 'square'],
            },
          },
          tooltip: [
            { field: 'concurrent' },
            { field: 'parallel' },
            { field: 'throughput' },
            { field: 'offered' },
            { field: 'verdict' },
          ],
        },
      },
      {
        data: { values: chosen },
        mark: {
          type: 'point',
          shape: 'circle',
          size: 400,
          strokeWidth: 3,
          color: 'black',
          filled: false,
        },
        encoding: {
          x: { field: 'concurrent', type: 'quantitative', scale: { type: 'log', base: 2 } },
          y: { field: 'throughput', type: 'quantitative' },
        },
      },
    ],
  });
}
