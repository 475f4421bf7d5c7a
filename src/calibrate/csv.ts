import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';

export type CsvRow = Record<string, string>;

export function readCsv(path: string): CsvRow[] {
  return parse(readFileSync(path, 'utf8'), { columns: true, skip_empty_lines: true }) as CsvRow[];
}

/** A numeric cell, or NaN when empty. */
export function num(row: CsvRow, column: string): number {
  const v = row[column];
  if (v === undefined) throw new Error(`column ${column} is missing`);
  return v.trim() === '' ? Number.NaN : Number(v);
}
