// Read the whole of stdin, bounded: a config larger than the bound is refused (code 6)
// instead of being buffered, and a failing read is an I/O error (code 5).
import { CniError, CniErrorCode, describeThrown } from './errors.js';

/** Largest config accepted on stdin. Real configs with a prevResult are a few KiB. */
export const MAX_STDIN_BYTES = 1024 * 1024;

export async function readStdin(stream: NodeJS.ReadableStream, limit: number = MAX_STDIN_BYTES): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer | string>) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      total += buf.length;
      if (total > limit) {
        // Leaving the loop destroys the stream: nothing more is buffered.
        throw new CniError(CniErrorCode.DecodingFailure, `config larger than ${limit} bytes`, `stdin holds more than ${limit} bytes`);
      }
      chunks.push(buf);
    }
  } catch (err) {
    if (err instanceof CniError) throw err;
    throw new CniError(CniErrorCode.IoFailure, 'error reading from stdin', describeThrown(err));
  }
  return Buffer.concat(chunks, total);
}

/** Whether `stream` is a terminal (then there is no config to wait for). */
export function isTerminal(stream: NodeJS.ReadableStream): boolean {
  return (stream as { isTTY?: unknown }).isTTY === true;
}
