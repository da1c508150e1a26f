// Small helpers of the benchmark: statistics, parsers of wrk and iperf3
// output, and formatting.

export function sorted(xs: readonly number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

/** Nearest-rank percentile (p in 0..100) of a non-empty list. */
export function percentile(xs: readonly number[], p: number): number {
  const s = sorted(xs);
  if (s.length === 0) return Number.NaN;
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1] as number;
}

export function median(xs: readonly number[]): number {
  const s = sorted(xs);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export interface Spread {
  min: number;
  median: number;
  max: number;
  n: number;
}

export function spread(xs: readonly number[]): Spread {
  const ok = xs.filter((x) => Number.isFinite(x));
  if (ok.length === 0) return { min: Number.NaN, median: Number.NaN, max: Number.NaN, n: 0 };
  const s = sorted(ok);
  return { min: s[0] as number, median: median(s), max: s[s.length - 1] as number, n: s.length };
}

/** wrk duration text ("812.00us", "1.20ms", "2.00s") in microseconds. */
export function wrkDurationUs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) return Number.NaN;
  const v = Number(m[1]);
  switch (m[2]) {
    case 'us':
      return v;
    case 'ms':
      return v * 1e3;
    case 's':
      return v * 1e6;
    default:
      return v * 60e6;
  }
}

export interface WrkResult {
  requestsPerSec: number;
  p50Us: number;
  p99Us: number;
  requests: number;
  /** Socket errors (connect, read, write, timeout) and non-2xx responses. */
  errors: number;
}

/** Parses `wrk --latency` text output. */
export function parseWrk(out: string): WrkResult {
  const num = (re: RegExp): number => {
    const m = re.exec(out);
    return m ? Number(m[1]) : Number.NaN;
  };
  const lat = (pct: string): number => {
    const m = new RegExp(`^\\s*${pct}%\\s+(\\S+)`, 'm').exec(out);
    return m ? wrkDurationUs(m[1] as string) : Number.NaN;
  };
  let errors = 0;
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  if (sock) errors += Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4]);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (non2xx) errors += Number(non2xx[1]);
  return {
    requestsPerSec: num(/Requests\/sec:\s+([\d.]+)/),
    p50Us: lat('50'),
    p99Us: lat('99'),
    requests: num(/(\d+) requests in/),
    errors,
  };
}

/** Received bits/s of an `iperf3 -J` client run (the receiver's count). */
export function parseIperf(out: string): { bitsPerSec: number; bytes: number; error: string | undefined } {
  try {
    const j = JSON.parse(out) as { error?: string; end?: { sum_received?: { bits_per_second?: number; bytes?: number } } };
    return { bitsPerSec: j.end?.sum_received?.bits_per_second ?? Number.NaN, bytes: j.end?.sum_received?.bytes ?? Number.NaN, error: j.error };
  } catch {
    return { bitsPerSec: Number.NaN, bytes: Number.NaN, error: `unparsable iperf3 output: ${out.slice(0, 200)}` };
  }
}

export function fmtNum(v: number, digits = 0): string {
  if (!Number.isFinite(v)) return 'n/a';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtRatio(a: number, b: number): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return 'n/a';
  return (a / b).toFixed(2);
}

export function log(msg: string): void {
  process.stderr.write(`bench ${new Date().toISOString().slice(11, 19)} ${msg}\n`);
}

export interface LoadResult {
  sent: number;
  completed: number;
  /** Requests sent more than 1 ms after they were due (their connection was still busy). */
  lateSends: number;
  achievedRps: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  /** Set when the run failed: errors, timeouts, requests never sent, or no summary. */
  error: string | undefined;
}

/** The summary line of testing/tools/mlload (latency from each request's due time). */
export function parseLoad(out: string): LoadResult {
  const line = out.split('\n').find((l) => l.startsWith('{') && l.includes('"event":"done"'));
  const nan = Number.NaN;
  const empty: LoadResult = { sent: nan, completed: nan, lateSends: nan, achievedRps: nan, p50Us: nan, p90Us: nan, p99Us: nan, p999Us: nan, maxUs: nan, error: undefined };
  if (!line) return { ...empty, error: `no summary from mlload: ${out.slice(0, 200)}` };
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return { ...empty, error: `unparsable mlload summary: ${line.slice(0, 200)}` };
  }
  const n = (k: string): number => (typeof j[k] === 'number' ? (j[k] as number) : nan);
  const problems = (['errors', 'timeouts', 'unsent'] as const).filter((k) => n(k) !== 0).map((k) => `${k} ${n(k)}`);
  return {
    sent: n('sent'),
    completed: n('completed'),
    lateSends: n('late_sends'),
    achievedRps: n('achieved_rps'),
    p50Us: n('p50_us'),
    p90Us: n('p90_us'),
    p99Us: n('p99_us'),
    p999Us: n('p999_us'),
    maxUs: n('max_us'),
    error: problems.length > 0 ? `mlload: ${problems.join(', ')}` : undefined,
  };
}
