// What every command shares: strict flag parsing, integer flags, usage errors and one-line error
// messages. Commands import this, never main.ts, so the CLI has no import cycle.
import { parseArgs } from 'node:util';
import { ModelUnavailableError } from '../model/model.js';
import { UnknownProfileError } from '../profiles/store.js';
import { InputError } from '../input/errors.js';
import { SearchInputError } from '../search/index.js';
import { TraceError } from '../placement/trace.js';
import { MeasureInputError } from '../measure/npy.js';

export class UsageError extends Error {}

export function describe(error: unknown): string {
  if (error instanceof InputError) return `invalid input: ${error.message}`;
  if (
    error instanceof UnknownProfileError ||
    error instanceof UsageError ||
    error instanceof ModelUnavailableError ||
    error instanceof SearchInputError ||
    error instanceof TraceError ||
    error instanceof MeasureInputError
  ) {
    return error.message;
  }
  if (error instanceof SyntaxError) return `not valid JSON: ${error.message}`;
  if (error instanceof Error && 'code' in error && error.code === 'ENOENT') return error.message;
  if (
    error instanceof Error &&
    'code' in error &&
    typeof error.code === 'string' &&
    error.code.startsWith('ERR_PARSE_ARGS')
  ) {
    return error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;
export type ParsedOptions<T extends OptionSpec> = {
  [K in keyof T]?: T[K]['type'] extends 'string' ? string : boolean;
} & { help?: boolean };

/** Strict flag parsing: an unknown flag or a positional argument is a usage error. */
export function parseOptions<T extends OptionSpec>(
  argv: string[],
  options: T,
): { values: ParsedOptions<T> } {
  const { values } = parseArgs({
    args: argv,
    options: { ...options, help: { type: 'boolean', short: 'h' } },
    strict: true,
    allowPositionals: false,
  });
  return { values: values as ParsedOptions<T> };
}

/** An integer flag (undefined when absent); below `min` or not an integer is a usage error. */
export function intOption(value: string | undefined, name: string, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    const what =
      min === 1
        ? 'a positive integer'
        : min === 0
          ? 'a non-negative integer'
          : `an integer >= ${min}`;
    throw new UsageError(`${name} must be ${what}`);
  }
  return n;
}
