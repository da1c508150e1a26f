// A node-wide lock between concurrent plugin processes (the runtime runs ADD and
// DEL of different pods in parallel): a lock file created with O_EXCL holding the
// owner's pid. A lock whose owner is dead is taken over. Waiting is bounded.
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';

export class LockTimeoutError extends Error {
  override name = 'LockTimeoutError';
}

function ownerAlive(path: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(path, 'utf8').trim());
  } catch {
    return true; // being written or just removed: try again
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function withLock<T>(path: string, timeoutMs: number, body: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let wait = 2;
  for (;;) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (!ownerAlive(path)) {
        rmSync(path, { force: true });
        continue;
      }
      if (Date.now() >= deadline) {
        throw new LockTimeoutError(`${path} is held by another meshlane process for more than ${timeoutMs} ms`);
      }
      await sleep(wait);
      wait = Math.min(wait * 2, 50);
    }
  }
  try {
    return await body();
  } finally {
    rmSync(path, { force: true });
  }
}
