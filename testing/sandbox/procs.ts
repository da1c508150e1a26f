// Processes inside a sandbox: started by mlexec (testing/tools/mlexec.c), which
// writes its own PID into the target cgroup's cgroup.procs, enters the target
// netns, drops to the uid/gid and execs the program, so the PID the harness
// holds is the program's PID and every socket it makes is in that cgroup.
// Processes are only ever ended by their own PID.
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';

/** Where a process runs: a netns (path) and a cgroup v2 directory. */
export interface Placement {
  netnsPath: string;
  cgroupDir: string;
}

export interface SpawnOptions {
  /** Default 0 (root). */
  uid?: number;
  /** Default 0 (root). */
  gid?: number;
  /** Added to the harness's environment. */
  env?: Record<string, string>;
  cwd?: string;
}

export interface RunOptions extends SpawnOptions {
  /** Default 30 000 ms; then SIGKILL (by PID) and timedOut = true. */
  timeoutMs?: number;
  input?: string;
}

export interface RunResult {
  exitCode: number | undefined;
  signal: string | undefined;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface ExitInfo {
  exitCode: number | undefined;
  signal: string | undefined;
}

export type JsonObject = Record<string, unknown>;

export interface WaitOptions {
  /** Default 5 000 ms. */
  timeoutMs?: number;
  /** Only lines with index >= from (default 0: every line seen so far, then new ones). */
  from?: number;
}

const MAX_LINES = 200_000;
const MAX_STDERR = 64 * 1024;

function idArg(v: number | undefined, what: string): string {
  const n = v ?? 0;
  if (!Number.isInteger(n) || n < 0 || n > 0xfffffffe) throw new Error(`bad ${what} ${String(v)}`);
  return String(n);
}

function mlexecArgs(place: Placement, cmd: string, args: readonly string[], opts: SpawnOptions): string[] {
  return [
    '--cgroup', place.cgroupDir,
    '--netns', place.netnsPath,
    '--uid', idArg(opts.uid, 'uid'),
    '--gid', idArg(opts.gid, 'gid'),
    '--', cmd, ...args,
  ];
}

function parseJson(line: string): JsonObject | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const v: unknown = JSON.parse(line);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as JsonObject) : undefined;
  } catch {
    return undefined;
  }
}

/** A long-running process: its stdout lines as they come, its exit, and kill by PID. */
export class SpawnedProcess {
  readonly pid: number;
  readonly command: string;
  readonly exited: Promise<ExitInfo>;
  #lines: string[] = [];
  #stderr = '';
  #done: ExitInfo | undefined;
  #listeners = new Set<() => void>();
  #lineCallbacks = new Set<(line: string) => void>();
  #started: Promise<boolean>;

  constructor(mlexec: string, place: Placement, cmd: string, args: readonly string[], opts: SpawnOptions) {
    this.command = [cmd, ...args].join(' ');
    const sub = execa(mlexec, ['--ready-fd', '3', ...mlexecArgs(place, cmd, args, opts)], {
      env: opts.env ?? {},
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      buffer: false,
      reject: false,
      cleanup: true,
    });
    if (sub.pid === undefined) throw new Error(`could not start ${this.command}`);
    this.pid = sub.pid;
    // fd 3 is close-on-exec in mlexec: EOF = the program runs (or mlexec died); "E" = mlexec failed.
    const readyPipe = sub.stdio[3];
    this.#started = new Promise<boolean>((res) => {
      let failed = false;
      readyPipe.on('data', () => {
        failed = true;
      });
      readyPipe.once('close', () => res(!failed));
      readyPipe.once('error', () => res(false));
    });
    const rl = createInterface({ input: sub.stdout });
    rl.on('line', (line) => {
      if (this.#lines.length < MAX_LINES) this.#lines.push(line);
      for (const cb of [...this.#lineCallbacks]) cb(line);
      this.#notify();
    });
    sub.stderr.on('data', (chunk: Buffer) => {
      if (this.#stderr.length < MAX_STDERR) this.#stderr += chunk.toString('utf8');
    });
    const closed = new Promise<void>((res) => rl.once('close', () => res()));
    // The process's own exit, not the end of its stdout: a child it left
    // behind may hold the pipe open (destroy() ends those by cgroup, by PID).
    const exit = new Promise<ExitInfo>((res) => {
      sub.once('exit', (code, signal) => res({ exitCode: code ?? undefined, signal: signal ?? undefined }));
      void sub.then((r) => res({ exitCode: r.exitCode, signal: r.signal }));
    });
    this.exited = exit.then(async (info) => {
      await Promise.race([closed, sleep(200)]); // the last lines still in the pipe
      this.#done = info;
      this.#notify();
      return info;
    });
  }

  /**
   * Resolves once the program has been exec'd (so it is in its cgroup and
   * netns, as its uid); rejects with mlexec's message when placement failed.
   */
  async started(): Promise<this> {
    if (await this.#started) return this;
    const exit = await this.exited;
    throw new Error(`could not start ${this.command} (exit ${String(exit.exitCode)}): ${this.#stderr.trim()}`);
  }

  #notify(): void {
    for (const l of [...this.#listeners]) l();
  }

  get running(): boolean {
    return this.#done === undefined;
  }

  /** Call `cb` with each new stdout line as it comes; returns the unsubscribe function. */
  onLine(cb: (line: string) => void): () => void {
    this.#lineCallbacks.add(cb);
    return () => {
      this.#lineCallbacks.delete(cb);
    };
  }

  /** Every stdout line so far. */
  lines(): readonly string[] {
    return this.#lines;
  }

  /** Every stdout line so far that is a JSON object. */
  events(): JsonObject[] {
    return this.#lines.map(parseJson).filter((e): e is JsonObject => e !== undefined);
  }

  stderr(): string {
    return this.#stderr;
  }

  /** The first line (index >= from) matching `pred`, waiting for it up to timeoutMs. */
  waitForLine(pred: (line: string) => boolean, opts: WaitOptions = {}): Promise<string> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    let next = opts.from ?? 0;
    return new Promise<string>((resolve, reject) => {
      const check = (): void => {
        for (; next < this.#lines.length; next++) {
          const line = this.#lines[next] as string;
          if (pred(line)) {
            finish();
            resolve(line);
            return;
          }
        }
        if (this.#done !== undefined) {
          finish();
          reject(new Error(`${this.command} (pid ${this.pid}) exited (${this.#describeExit()}) before printing the line waited for; stderr: ${this.#stderr.trim().slice(-2000)}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for a line from ${this.command} (pid ${this.pid}); last lines: ${this.#lines.slice(-5).join(' | ')}; stderr: ${this.#stderr.trim().slice(-2000)}`));
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        this.#listeners.delete(check);
      };
      this.#listeners.add(check);
      check();
    });
  }

  /** The first JSON-object line (index >= from) matching `pred`. */
  async waitForJson(pred: (ev: JsonObject) => boolean, opts: WaitOptions = {}): Promise<JsonObject> {
    const line = await this.waitForLine((l) => {
      const ev = parseJson(l);
      return ev !== undefined && pred(ev);
    }, opts);
    return parseJson(line) as JsonObject;
  }

  #describeExit(): string {
    const d = this.#done;
    if (d === undefined) return 'running';
    return d.signal !== undefined ? `signal ${d.signal}` : `exit ${String(d.exitCode)}`;
  }

  /** Send `signal` to this PID only; SIGKILL after graceMs; resolves when it has exited. */
  async kill(signal: NodeJS.Signals = 'SIGTERM', graceMs = 2000): Promise<ExitInfo> {
    if (this.#done !== undefined) return this.#done;
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
    const timedOut = Symbol('timeout');
    const r = await Promise.race([this.exited, sleep(graceMs, timedOut)]);
    if (r !== timedOut) return r as ExitInfo;
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    return this.exited;
  }
}

/** Starts processes in placements and remembers them, so that all can be ended by PID. */
export class ProcessRegistry {
  readonly #mlexec: string;
  readonly #procs = new Set<SpawnedProcess>();

  constructor(mlexecPath: string) {
    this.#mlexec = mlexecPath;
  }

  /** Start a process; resolves once it has exec'd in its placement. */
  async spawn(place: Placement, cmd: string, args: readonly string[], opts: SpawnOptions = {}): Promise<SpawnedProcess> {
    const p = new SpawnedProcess(this.#mlexec, place, cmd, args, opts);
    this.#procs.add(p);
    void p.exited.then(() => this.#procs.delete(p));
    return p.started();
  }

  async run(place: Placement, cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const r = await execa(this.#mlexec, mlexecArgs(place, cmd, args, opts), {
      env: opts.env ?? {},
      cwd: opts.cwd,
      input: opts.input ?? '',
      reject: false,
      timeout: opts.timeoutMs ?? 30_000,
      killSignal: 'SIGKILL',
      maxBuffer: 64 * 1024 * 1024,
    });
    return {
      exitCode: r.exitCode,
      signal: r.signal,
      stdout: r.stdout,
      stderr: r.stderr,
      timedOut: r.timedOut,
    };
  }

  /** Processes started here that are still running. */
  running(): SpawnedProcess[] {
    return [...this.#procs].filter((p) => p.running);
  }

  /** SIGTERM each (by PID), SIGKILL after graceMs. */
  async killAll(graceMs = 1000): Promise<void> {
    await Promise.all(this.running().map((p) => p.kill('SIGTERM', graceMs)));
  }
}
