// stdin and stdout of a CNI call as plain file descriptors, read and written
// with read(2)/write(2). process.stdin and process.stdout on a pipe are net
// sockets: making them loads net, streams and the pipe machinery, a cost every
// CNI call would pay at start for one small document in and one out.
// A descriptor that cannot be used so (non-blocking: EAGAIN) falls back to the
// process's stream.
import { fstatSync, readSync, writeSync } from 'node:fs';

function isEagain(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'EAGAIN';
}

/** Reads fd 0 to its end; `isTTY` for a character device (a terminal, or /dev/null: nothing to wait for). */
export function stdinFromFd(): NodeJS.ReadableStream {
  let isTTY = false;
  try {
    isTTY = fstatSync(0).isCharacterDevice();
  } catch {
    isTTY = false;
  }
  const iterable = {
    isTTY,
    async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
      const buf = Buffer.allocUnsafe(65536);
      for (;;) {
        let n: number;
        try {
          n = readSync(0, buf, 0, buf.length, null);
        } catch (err) {
          if (!isEagain(err)) throw err;
          for await (const chunk of process.stdin as AsyncIterable<Buffer>) yield chunk;
          return;
        }
        if (n === 0) return;
        yield Buffer.from(buf.subarray(0, n));
      }
    },
  };
  return iterable as unknown as NodeJS.ReadableStream;
}

/** Writes to fd 1 synchronously: write(text, callback), and the listener calls a stream has (no events are ever sent). */
export function stdoutToFd(): NodeJS.WritableStream {
  const out = {
    write(chunk: string | Uint8Array, cb?: (err?: Error | null) => void): boolean {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      let off = 0;
      try {
        while (off < bytes.length) off += writeSync(1, bytes, off, bytes.length - off);
      } catch (err) {
        if (isEagain(err)) return process.stdout.write(bytes.subarray(off), cb);
        cb?.(err as Error);
        return false;
      }
      cb?.(null);
      return true;
    },
    once: () => out,
    on: () => out,
    removeListener: () => out,
    off: () => out,
  };
  return out as unknown as NodeJS.WritableStream;
}
