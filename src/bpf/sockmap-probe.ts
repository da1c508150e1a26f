// The sockmap fault probe: does this kernel keep a TCP socket's promises once
// the socket sits in a sockhash with an sk_msg program, as meshlane's sockets
// do with the bypass on? The probe itself is native (native/sockmap_probe.h):
// its own 2-entry sockhash, an 11-instruction sk_msg program attached to that
// map only (no cgroup, nothing pinned), one TCP connection on 127.0.0.1, every
// wait bounded, everything closed before it returns. This module runs it and
// checks the shape of what it found; what the findings mean for each sockmap
// mode is decided in src/install/sockmap-safety.ts.
import { release } from 'node:os';
import { native } from '../sys/native.js';
import { raiseMemlockLimit } from '../sys/bpf.js';
import { errorMessage } from '../describe-error.js';

/** What an application sees on one receiving socket after the peer sent `bytes`. */
export interface ProbeDirection {
  /** An epoll (EPOLLIN | EPOLLET) registered before the send woke up. */
  epoll: boolean;
  /** poll() said readable. */
  poll: boolean;
  /** The largest FIONREAD seen within the bound (a sound kernel: `bytes`). */
  fionread: number;
  /** Bytes splice() moved into a pipe within the bound; a negative errno when none; undefined: not tried. */
  splice?: number;
  /** Bytes read in the end (splice + recv). */
  received: number;
  /** Those bytes are exactly the ones sent. */
  intact: boolean;
  /** Growth of the receiver's tcpi_bytes_received: 0 when the bytes did not come the TCP way; -1 unknown. */
  tcpBytes: number;
}

export interface SockmapProbe {
  /** uname -r of the kernel probed. */
  kernel: string;
  /** The step that failed before anything could be asked (the kernel refused the sockhash, program or attach); undefined: the probe ran. */
  failedStep?: string;
  /** The errno of that step, and the verifier's log when the program was refused. */
  errno?: number;
  log?: string;
  /** Bytes sent in each direction. */
  bytes: number;
  /** A -> B through bpf_msg_redirect_hash(BPF_F_INGRESS): the bytes land in B's psock queue. */
  redirected?: ProbeDirection;
  /** B -> A with no redirect target: the bytes come the normal TCP way into A, a socket in the sockhash. */
  tcp?: ProbeDirection;
  /** How long the probe took. */
  ms: number;
}

/** The default bound of each wait; a sound kernel answers in a few ms, one with every fault in about 7 of these. */
export const PROBE_TIMEOUT_MS = 300;

function num(o: Record<string, unknown>, k: string): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`sockmap probe: ${k} is not a number (${JSON.stringify(v)})`);
  return v;
}

function direction(v: unknown, name: string, spliced: boolean): ProbeDirection {
  if (v === null || typeof v !== 'object') throw new Error(`sockmap probe: no ${name} result`);
  const o = v as Record<string, unknown>;
  const splice = num(o, 'splice');
  return {
    epoll: num(o, 'epoll') !== 0,
    poll: num(o, 'poll') !== 0,
    fionread: num(o, 'fionread'),
    ...(spliced && splice !== -1000 ? { splice } : {}),
    received: num(o, 'received'),
    intact: num(o, 'intact') !== 0,
    tcpBytes: num(o, 'tcpBytes'),
  };
}

/** The native module's raw answer, checked and typed. */
export function parseProbe(raw: unknown, kernel: string): SockmapProbe {
  if (raw === null || typeof raw !== 'object') throw new Error('sockmap probe: no result');
  const o = raw as Record<string, unknown>;
  const stage = typeof o['stage'] === 'string' ? o['stage'] : '';
  const base = { kernel, bytes: num(o, 'bytes'), ms: Math.round(num(o, 'ms')) };
  if (stage !== '') {
    const log = typeof o['log'] === 'string' ? o['log'].trim().split('\n').slice(-3).join(' | ') : '';
    return { ...base, failedStep: stage, errno: num(o, 'errno'), ...(log ? { log } : {}) };
  }
  return { ...base, redirected: direction(o['redirected'], 'redirected', true), tcp: direction(o['tcp'], 'tcp', false) };
}

/**
 * Run the probe on the running kernel. Never throws for what the kernel
 * refuses (that is a finding: `failedStep`); throws only when the native
 * module cannot be loaded or answers nonsense.
 */
export function probeSockmap(timeoutMs = PROBE_TIMEOUT_MS): SockmapProbe {
  const n = native();
  if (typeof n.sockmapProbe !== 'function') throw new Error('the native module has no sockmapProbe (an older build)');
  raiseMemlockLimit(); // before 5.11, with the datapath's maps loaded, its own map and program need it
  try {
    return parseProbe(n.sockmapProbe(timeoutMs), release());
  } catch (err) {
    throw new Error(`sockmap probe: ${errorMessage(err)}`, { cause: err });
  }
}
