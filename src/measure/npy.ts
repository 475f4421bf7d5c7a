/** A file the ingestion cannot read, named with where it failed: never a stack trace. */
export class MeasureInputError extends Error {
  constructor(
    readonly file: string,
    what: string,
    readonly line?: number,
  ) {
    super(`${file}${line !== undefined ? `:${line}` : ''}: ${what}`);
  }
}

/**
 * Reads a NumPy .npy file of little-endian float64 values (format 1.0/2.0, C order), as the
 * metrics checker writes them, without NumPy.
 */
export function readNpyFloat64(buffer: Buffer, file: string): Float64Array {
  if (buffer.length < 10 || buffer.toString('latin1', 0, 6) !== '\x93NUMPY')
    throw new MeasureInputError(file, 'not a .npy file (no \\x93NUMPY magic)');
  const major = buffer[6]!;
  const headerLength = major === 1 ? buffer.readUInt16LE(8) : buffer.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLength;
  if (start > buffer.length) throw new MeasureInputError(file, 'truncated .npy header');
  const header = buffer.toString('latin1', major === 1 ? 10 : 12, start);
  if (!/'descr':\s*'<f8'/.test(header))
    throw new MeasureInputError(
      file,
      `expected little-endian float64 ('<f8'), header ${header.trim()}`,
    );
  if (/'fortran_order':\s*True/.test(header))
    throw new MeasureInputError(file, 'Fortran-ordered arrays are not read');
  const shape = /'shape':\s*\((\d*),?\s*\)/.exec(header);
  const count = shape && shape[1] !== '' ? Number(shape[1]) : 1;
  if (start + count * 8 > buffer.length)
    throw new MeasureInputError(
      file,
      `truncated: ${count} values announced, ${Math.floor((buffer.length - start) / 8)} present`,
    );
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = buffer.readDoubleLE(start + i * 8);
  return out;
}
