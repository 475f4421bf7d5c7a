import type { EvaluatedPoint } from '../search/index.js';
import type { RecommendResponse } from '../recommend/index.js';
import type { PlacementGpu, PlacementResponse } from '../placement/index.js';

/**
 * A recommendation at a glance: a heatmap of --max-cpu-loras (columns) x --max-loras (rows,
 * fewest slots at the bottom), each simulated cell coloured by throughput and labelled with it,
 * starving, SLO-breaking and infeasible cells marked, pairs never simulated left blank, and the
 * answer outlined. Plain SVG built from strings: well under a millisecond, so it never holds up
 * the event loop.
 */
export function recommendationHeatmap(
  response: RecommendResponse,
  slo?: { ttftP99Ms?: number },
): string {
  const rec = response.recommendation;
  const points = response.evaluated;
  const columns = [...new Set(points.map((p) => p.concurrentAdapters))].sort((a, b) => a - b);
  const rows = [...new Set(points.map((p) => p.parallelAdapters))].sort((a, b) => b - a);
  const at = new Map(points.map((p) => [`${p.concurrentAdapters}x${p.parallelAdapters}`, p]));
  const simulated = points.filter((p) => p.simulated && p.feasible);
  // The ramp spans the serving pairs' throughputs (the others are marked in their own colours),
  // so pairs a few percent apart still read as different shades.
  const serving = simulated.filter((p) => !p.starving && !p.sloViolated);
  const throughputs = serving.map((p) => p.throughputTokensPerSecond);
  const lowest = throughputs.length ? Math.min(...throughputs) : 0;
  const highest = throughputs.length ? Math.max(...throughputs) : 1;
  const scale = (t: number) => (highest > lowest ? (t - lowest) / (highest - lowest) : 1);

  const cell = { w: 56, h: 30 };
  const margin = { left: 92, top: 58, right: 16, bottom: 118 };
  const panels = points.some((p) => p.latency) ? 2 : 1;
  const width = Math.max(
    680,
    panels * (margin.left + columns.length * cell.w) + (panels - 1) * 24 + margin.right,
  );
  const height = margin.top + rows.length * cell.h + margin.bottom;
  const x = (i: number) => margin.left + i * cell.w;
  const y = (j: number) => margin.top + j * cell.h;
  const parts: string[] = [];
  const text = (tx: number, ty: number, s: string, attrs = '') =>
    parts.push(`<text x="${tx}" y="${ty}" ${attrs}>${escapeXml(s)}</text>`);

  text(
    12,
    22,
    `Throughput by --max-cpu-loras x --max-loras (${response.method}); answer: ${rec.concurrentAdapters} x ${rec.parallelAdapters}`,
    'font-size="14" font-weight="bold"',
  );
  text(
    12,
    40,
    `${Math.round(rec.throughputTokensPerSecond).toLocaleString('en-US')} of ${Math.round(rec.offeredTokensPerSecond).toLocaleString('en-US')} tok/s offered; cells show throughput in k tok/s`,
    'font-size="11" fill="#444"',
  );
  const gridWidth = columns.length * cell.w;
  // The second panel, to the right: each pair's predicted p99 TTFT against the SLO.
  const offset = gridWidth + margin.left + 24;
  const sloTtft = slo?.ttftP99Ms;
  const drawPanel = (dx: number, look: (p: EvaluatedPoint | undefined) => CellLook) => {
    rows.forEach((parallel, j) => {
      text(
        dx + margin.left - 8,
        y(j) + cell.h / 2 + 4,
        String(parallel),
        'font-size="11" text-anchor="end"',
      );
      columns.forEach((concurrent, i) => {
        const p = at.get(`${concurrent}x${parallel}`);
        const { fill, label, labelColour } = look(p);
        parts.push(
          `<rect x="${dx + x(i) + 1}" y="${y(j) + 1}" width="${cell.w - 2}" height="${cell.h - 2}" fill="${fill}" stroke="#ddd"><title>${escapeXml(describe(concurrent, parallel, p))}</title></rect>`,
        );
        if (label)
          text(
            dx + x(i) + cell.w / 2,
            y(j) + cell.h / 2 + 4,
            label,
            `font-size="10" text-anchor="middle" fill="${labelColour}"`,
          );
      });
    });
    columns.forEach((concurrent, i) =>
      text(
        dx + x(i) + cell.w / 2,
        y(rows.length) + 14,
        String(concurrent),
        'font-size="11" text-anchor="middle"',
      ),
    );
    text(
      dx + margin.left + gridWidth / 2,
      y(rows.length) + 32,
      '--max-cpu-loras (concurrent adapters)',
      'font-size="12" text-anchor="middle"',
    );
    text(
      dx + 14,
      margin.top + (rows.length * cell.h) / 2,
      '--max-loras',
      `font-size="12" text-anchor="middle" transform="rotate(-90 ${dx + 14} ${margin.top + (rows.length * cell.h) / 2})"`,
    );
    const ci = columns.indexOf(rec.concurrentAdapters);
    const rj = rows.indexOf(rec.parallelAdapters);
    if (ci >= 0 && rj >= 0)
      parts.push(
        `<rect x="${dx + x(ci)}" y="${y(rj)}" width="${cell.w}" height="${cell.h}" fill="none" stroke="#000" stroke-width="3"/>`,
      );
  };
  drawPanel(0, (p) => cellLook(p, scale));
  const hasLatency = points.some((p) => p.latency);
  if (hasLatency) {
    drawPanel(offset, (p) => ttftLook(p, sloTtft));
    text(
      offset + margin.left,
      margin.top - 8,
      sloTtft !== undefined
        ? `p99 TTFT upper bound (s) against the SLO's ${formatSeconds(sloTtft)} s`
        : 'p99 TTFT upper bound (s); no TTFT SLO set',
      'font-size="11" font-weight="bold"',
    );
  }
  text(margin.left, margin.top - 8, 'throughput (k tok/s)', 'font-size="11" font-weight="bold"');

  // Legend: the colour ramp, then the marks.
  const ly = y(rows.length) + 50;
  const stops = 6;
  for (let k = 0; k < stops; k++)
    parts.push(
      `<rect x="${margin.left + k * 30}" y="${ly}" width="30" height="12" fill="${ramp(k / (stops - 1))}"/>`,
    );
  text(margin.left, ly + 26, `${(lowest / 1000).toFixed(1)}k`, 'font-size="10"');
  text(
    margin.left + stops * 30,
    ly + 26,
    `${(highest / 1000).toFixed(1)}k tok/s`,
    'font-size="10" text-anchor="end"',
  );
  const marks: Array<[string, string, string]> = [
    [STARVING, '#fff', 'starves'],
    [SLO, '#fff', 'breaks the SLO'],
    [INFEASIBLE, '#fff', 'vLLM cannot start'],
    ['#fff', '#000', 'answer (outlined)'],
  ];
  marks.forEach(([fill, stroke, name], k) => {
    const mx = margin.left + stops * 30 + 40 + (k % 2) * 150;
    const my = ly + Math.floor(k / 2) * 20;
    parts.push(
      `<rect x="${mx}" y="${my}" width="14" height="12" fill="${fill}" stroke="${stroke === '#fff' ? '#999' : stroke}" stroke-width="${stroke === '#000' ? 2 : 1}"/>`,
    );
    text(mx + 20, my + 10, name, 'font-size="10"');
  });
  text(
    margin.left,
    ly + 48,
    'blank: not simulated (the search ruled it out)',
    'font-size="10" fill="#666"',
  );

  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif"><rect width="100%" height="100%" fill="#fff"/>${parts.join('')}</svg>`;
}

const STARVING = '#d9534f';
const SLO = '#f0ad4e';
const INFEASIBLE = '#555';

interface CellLook {
  fill: string;
  label: string;
  labelColour: string;
}

const formatSeconds = (ms: number) =>
  ms >= 100_000
    ? (ms / 1000).toFixed(0)
    : ms >= 10_000
      ? (ms / 1000).toFixed(1)
      : (ms / 1000).toFixed(2);

/** Green when the upper bound meets the SLO (or, without one, under 10 s), orange above. */
function ttftLook(p: EvaluatedPoint | undefined, slo: number | undefined): CellLook {
  if (!p) return { fill: '#fff', label: '', labelColour: '#000' };
  if (!p.feasible) return { fill: INFEASIBLE, label: 'n/a', labelColour: '#fff' };
  if (!p.simulated || !p.latency) return { fill: '#fff', label: '', labelColour: '#000' };
  const high = p.latency.ttftMs.p99.sloMs;
  const limit = slo ?? 10_000;
  const label = formatSeconds(high);
  if (p.starving) return { fill: STARVING, label: `${label} ✕`, labelColour: '#fff' };
  return high <= limit
    ? { fill: '#5cb85c', label, labelColour: '#fff' }
    : { fill: SLO, label: `${label} !`, labelColour: '#000' };
}

function cellLook(p: EvaluatedPoint | undefined, scale: (throughput: number) => number): CellLook {
  if (!p) return { fill: '#fff', label: '', labelColour: '#000' };
  if (!p.feasible) return { fill: INFEASIBLE, label: 'n/a', labelColour: '#fff' };
  if (!p.simulated) return { fill: '#fff', label: '', labelColour: '#000' };
  const k = `${(p.throughputTokensPerSecond / 1000).toFixed(1)}`;
  if (p.starving) return { fill: STARVING, label: `${k} ✕`, labelColour: '#fff' };
  if (p.sloViolated) return { fill: SLO, label: `${k} !`, labelColour: '#000' };
  const t = scale(p.throughputTokensPerSecond);
  return { fill: ramp(t), label: k, labelColour: t > 0.55 ? '#fff' : '#000' };
}

/** Light to dark blue: more throughput reads as more ink. */
function ramp(t: number): string {
  const from = [222, 235, 247];
  const to = [8, 48, 107];
  const c = from.map((f, i) => Math.round(f + (to[i]! - f) * Math.min(1, Math.max(0, t))));
  return `rgb(${c.join(',')})`;
}

function describe(concurrent: number, parallel: number, p: EvaluatedPoint | undefined): string {
  const pair = `${concurrent} adapters, ${parallel} slots`;
  if (!p) return `${pair}: not evaluated`;
  if (!p.feasible) return `${pair}: vLLM cannot start (KV cache too small)`;
  if (!p.simulated) return `${pair}: not simulated`;
  const verdict = p.starving ? 'starves' : p.sloViolated ? 'breaks the SLO' : 'serves';
  const range = (e: { ms: number; lowMs: number; highMs: number }) =>
    `${Math.round(e.ms)} ms (${Math.round(e.lowMs)}-${Math.round(e.highMs)})`;
  const latency = p.latency
    ? `p99 TTFT ${range(p.latency.ttftMs.p99)}, p99 ITL ${range(p.latency.itlMs.p99)}`
    : `p99 TTFT ${Math.round(p.ttftP99Ms)} ms, p99 ITL ${Math.round(p.itlP99Ms)} ms`;
  return `${pair}: ${Math.round(p.throughputTokensPerSecond)} of ${Math.round(p.offeredTokensPerSecond)} tok/s, ${verdict}; ${latency}`;
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * A placement at a glance: one bar per GPU, its offered load, with its capacity as the twin
 * bracketed it (the load at +headroom.percentAtLeast% served, at +percentBelow% not; an open
 * bracket when not probed that far). Plain SVG from strings.
 */
export function placementChart(response: PlacementResponse): string {
  const gpus = response.gpus;
  const capacityLow = (g: PlacementGpu) =>
    g.offeredTokensPerSecond * (1 + g.headroom.percentAtLeast / 100);
  const capacityHigh = (g: PlacementGpu) =>
    g.headroom.percentBelow === null
      ? undefined
      : g.offeredTokensPerSecond * (1 + g.headroom.percentBelow / 100);
  const top = Math.max(1, ...gpus.map((g) => capacityHigh(g) ?? capacityLow(g) * 1.1));
  const bar = Math.max(4, Math.min(28, Math.floor(900 / Math.max(1, gpus.length))));
  const margin = { left: 70, top: 50, right: 20, bottom: 60 };
  const height = 260;
  const width = margin.left + gpus.length * (bar + 2) + margin.right;
  const y = (v: number) => margin.top + height - (v / top) * height;
  const parts: string[] = [];
  parts.push(
    `<text x="${margin.left}" y="22" font-size="14" font-family="sans-serif">${gpus.length} GPUs (lower bound ${response.lowerBound.gpus}), ${response.unplaced.length} adapters unplaced: offered load and twin-bracketed capacity per GPU</text>`,
  );
  for (const frac of [0, 0.25, 0.5, 0.75, 1]) {
    const v = top * frac;
    parts.push(
      `<line x1="${margin.left - 4}" x2="${width - margin.right}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="${margin.left - 8}" y="${y(v) + 4}" font-size="10" text-anchor="end" font-family="sans-serif">${Math.round(v).toLocaleString('en-US')}</text>`,
    );
  }
  gpus.forEach((g, i) => {
    const x = margin.left + i * (bar + 2);
    const load = g.offeredTokensPerSecond;
    const colour = g.stable ? '#4c78a8' : '#e45756';
    parts.push(
      `<rect x="${x}" y="${y(load)}" width="${bar}" height="${y(0) - y(load)}" fill="${colour}"><title>${escapeXml(g.id)}: ${Math.round(load)} tok/s offered, ${g.adapters.length} adapters, ${escapeXml(g.vllmArgs.join(' '))}</title></rect>`,
    );
    const low = capacityLow(g);
    const high = capacityHigh(g);
    parts.push(
      `<line x1="${x}" x2="${x + bar}" y1="${y(low)}" y2="${y(low)}" stroke="#000" stroke-width="2"/>`,
    );
    if (high !== undefined)
      parts.push(
        `<line x1="${x + bar / 2}" x2="${x + bar / 2}" y1="${y(low)}" y2="${y(high)}" stroke="#000" stroke-dasharray="2,2"/><line x1="${x}" x2="${x + bar}" y1="${y(high)}" y2="${y(high)}" stroke="#000" stroke-dasharray="2,2"/>`,
      );
  });
  parts.push(
    `<text x="${margin.left}" y="${margin.top + height + 24}" font-size="11" font-family="sans-serif">bars: offered tok/s (red: queue grows or completion under 99%); solid tick: load the twin serves; dashed tick: load it does not</text>`,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${margin.top + height + margin.bottom}" viewBox="0 0 ${width} ${margin.top + height + margin.bottom}"><rect width="100%" height="100%" fill="#fff"/>${parts.join('')}</svg>`;
}
