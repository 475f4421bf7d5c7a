import type { z } from 'zod';

/** One problem with a client's input, naming the field by its JSON path. */
export interface FieldIssue {
  field: string;
  message: string;
}

export function fieldIssues(error: z.ZodError, prefix: Array<string | number> = []): FieldIssue[] {
  return error.issues.map((issue) => {
    const path = [...prefix, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
    const field =
      path.length === 0
        ? '(root)'
        : path
            .map((p) => (typeof p === 'number' ? `[${p}]` : p))
            .join('.')
            .replace(/\.\[/g, '[');
    return { field, message: issue.message };
  });
}

export class InputError extends Error {
  constructor(readonly issues: FieldIssue[]) {
    super(issues.map((i) => `${i.field}: ${i.message}`).join('; '));
  }
}
