// The long-running installer (DaemonSet main process): a level-triggered loop.
// An event (the CNI dir changed, a timer) only means "check again"; each check
// decides whether anything needs writing. The watch is armed before the check,
// so no edit is missed, and re-armed every round (a rename drops it).
// SIGTERM ends the loop and leaves datapath, pins and conflist entry in place:
// an upgrade must not open a window where pods go unintercepted.
import { watch, type FSWatcher } from 'node:fs';
import type { Logger } from '../log/logger.js';
import type { Installer, PassResult } from './installer.js';
import type { ReconcileTotals } from './reconcile.js';
import type { SockmapDecision } from './sockmap-safety.js';
import { errorMessage, INTERNAL_ERROR_MSG } from '../describe-error.js';
import { userFacing } from './failures.js';

export interface LoopState {
  live: boolean;
  ready: boolean;
  reason: string;
  passes: number;
  conflistWrites: number;
  lastPass?: PassResult;
  /** The reconcile rounds' totals (late registrations, stale entries removed), when they run. */
  reconcile?: ReconcileTotals;
  /** The sockmap mode in force and why. */
  sockmap?: SockmapDecision;
}

export interface LoopOptions {
  signal: AbortSignal;
  /** Re-check this often without an event (datapath attached, token rotation). */
  periodMs?: number;
  /** Coalesce bursts of events. */
  debounceMs?: number;
  /** Warn when the entry had to be put back more than this many times within `fightWindowMs`. */
  fightThreshold?: number;
  fightWindowMs?: number;
  onState?: (s: LoopState) => void;
  /** After each pass that found the datapath attached (the reconcile round). Its failure is logged, never ends the loop. */
  afterPass?: (r: PassResult) => Promise<void>;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export async function runInstallLoop(installer: Installer, log: Logger, state: LoopState, opts: LoopOptions): Promise<void> {
  const periodMs = opts.periodMs ?? 30_000;
  const debounceMs = opts.debounceMs ?? 100;
  const fightThreshold = opts.fightThreshold ?? 5;
  const fightWindowMs = opts.fightWindowMs ?? 60_000;
  const writes: number[] = [];
  let wake: (() => void) | undefined;
  let pending = false;
  const poke = (): void => {
    pending = true;
    wake?.();
  };
  opts.signal.addEventListener('abort', poke, { once: true });
  let watcher: FSWatcher | undefined;
  const arm = (): void => {
    watcher?.close();
    try {
      watcher = watch(installer.opts.cniNetDir, { persistent: false }, () => poke());
      watcher.on('error', () => poke());
    } catch (err) {
      watcher = undefined;
      log.warn('cannot watch the CNI config dir; checking on a timer only', { dir: installer.opts.cniNetDir, error: errorMessage(err) });
    }
  };
  state.live = true;
  try {
    let first = true;
    while (!opts.signal.aborted) {
      arm();
      pending = false;
      try {
        const r = await installer.pass({ datapath: first });
        first = false;
        state.passes += 1;
        state.lastPass = r;
        state.ready = r.datapath && r.conflist;
        state.reason = state.ready ? `datapath attached, ${r.conflistFile ?? 'conflist'} chained` : r.reason;
        if (r.sockmap) {
          state.sockmap = r.sockmap;
          // Ready either way (interception works with sockmap off), but readiness says what was refused.
          if (r.sockmap.effective !== r.sockmap.requested) state.reason += `; ${r.sockmap.message}`;
        }
        if (r.datapath && opts.afterPass) {
          await opts.afterPass(r).catch((err: unknown) => log.error('reconcile round failed; retrying next pass', { error: errorMessage(err) }));
        }
        if (r.wroteConflist) {
          state.conflistWrites += 1;
          const now = Date.now();
          writes.push(now);
          while (writes.length > 0 && (writes[0] ?? 0) < now - fightWindowMs) writes.shift();
          if (writes.length > fightThreshold) {
            log.warn('the meshlane entry keeps being removed from the CNI config: another agent is rewriting it', {
              file: r.conflistFile,
              rewrites: writes.length,
              windowSeconds: fightWindowMs / 1000,
            });
          }
        }
      } catch (err) {
        state.ready = false;
        state.reason = `install pass failed: ${errorMessage(err)}`;
        // A bug keeps its stack in the log: the loop goes on, but the report must not lose where it came from.
        const bug = userFacing(err) === undefined ? { bug: INTERNAL_ERROR_MSG, stack: err instanceof Error ? err.stack : undefined } : {};
        log.error('install pass failed; retrying', { error: errorMessage(err), ...bug });
      }
      opts.onState?.(state);
      if (opts.signal.aborted) break;
      // Wait for an event or the period; then let a burst settle.
      await new Promise<void>((resolve) => {
        if (pending) return resolve();
        const timer = setTimeout(resolve, periodMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
      if (!opts.signal.aborted) {
        // Back off while the other agent keeps writing, so that a storm of rewrites is answered once.
        // The signal cuts the wait short: SIGTERM must end the installer at once, not after a backoff.
        const backoff = writes.length > fightThreshold ? Math.min(5000, debounceMs * 2 ** (writes.length - fightThreshold)) : debounceMs;
        await abortableSleep(backoff, opts.signal);
      }
    }
  } finally {
    watcher?.close();
    state.ready = false;
    state.live = false;
    state.reason = 'the install loop stopped';
    opts.onState?.(state);
  }
}
