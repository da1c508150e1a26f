// Which sockmap modes this kernel can be trusted with, from the probe's
// findings (src/bpf/sockmap-probe.ts). Pure: findings in, faults, allowed
// modes and one message out.
//
// What a fault means depends on whose sockets join the sockhash:
// - `on`: application sockets too. Applications read in every way there is:
//   epoll/poll, FIONREAD to size a read (nginx, Java NIO, .NET), splice()
//   (Go's io.Copy between TCP connections, splicing proxies). Any fault can
//   hang or corrupt some application, so any fault refuses `on`.
// - `proxy-only`: only the proxies' sockets to each other (Envoy's own
//   connections). Envoy reads on edge-triggered epoll with non-blocking
//   readv until EAGAIN; it neither sizes reads with FIONREAD nor splices TCP.
//   So the FIONREAD and splice faults leave `proxy-only` allowed; a readiness
//   fault (epoll or poll missing bytes), lost or altered bytes, or a redirect
//   that does not happen refuse it too.
import type { ProbeDirection, SockmapProbe } from '../bpf/sockmap-probe.js';

export type SockmapMode = 'off' | 'on' | 'proxy-only';

export type SockmapFault =
  | 'unsupported'
  | 'no-redirect'
  | 'data-redirected'
  | 'data-tcp'
  | 'epoll-redirected'
  | 'poll-redirected'
  | 'epoll-tcp'
  | 'poll-tcp'
  | 'fionread-redirected'
  | 'fionread-tcp'
  | 'splice-redirected';

/** What each fault is, in a user's words. */
export const FAULT_TEXT: Record<SockmapFault, string> = {
  unsupported: 'the kernel refused the probe (sockhash, sk_msg program or its attachment)',
  'no-redirect': 'bpf_msg_redirect_hash did not redirect the bytes',
  'data-redirected': 'redirected bytes were lost or altered',
  'data-tcp': 'bytes on the TCP path of a socket in a sockhash were lost or altered',
  'epoll-redirected': 'epoll did not wake up for redirected bytes',
  'poll-redirected': 'poll() did not report redirected bytes',
  'epoll-tcp': 'epoll did not wake up for TCP bytes of a socket in a sockhash',
  'poll-tcp': 'poll() did not report TCP bytes of a socket in a sockhash',
  'fionread-redirected': 'FIONREAD does not count redirected bytes (hangs nginx, Java NIO, .NET)',
  'fionread-tcp': 'FIONREAD does not count TCP bytes of a socket in a sockhash, only the psock queue (hangs nginx, Java NIO, .NET; fixed upstream by 04af4efde58a)',
  'splice-redirected': 'splice() cannot read redirected bytes (Go io.Copy, splicing proxies)',
};

/** Faults that refuse `proxy-only` as well; every fault refuses `on`. */
const PROXY_ONLY_FAULTS: ReadonlySet<SockmapFault> = new Set<SockmapFault>([
  'unsupported',
  'no-redirect',
  'data-redirected',
  'data-tcp',
  'epoll-redirected',
  'poll-redirected',
  'epoll-tcp',
  'poll-tcp',
]);

function directionFaults(d: ProbeDirection, bytes: number, where: 'redirected' | 'tcp'): SockmapFault[] {
  const out: SockmapFault[] = [];
  if (!d.intact || d.received !== bytes) out.push(`data-${where}`);
  if (!d.epoll) out.push(`epoll-${where}`);
  if (!d.poll) out.push(`poll-${where}`);
  if (d.fionread < bytes) out.push(`fionread-${where}`);
  return out;
}

/** The faults the probe found, in a fixed order. */
export function sockmapFaults(p: SockmapProbe): SockmapFault[] {
  if (p.failedStep !== undefined || !p.redirected || !p.tcp) return ['unsupported'];
  const out: SockmapFault[] = [];
  // A redirect that happened brings nothing the TCP way (-1: the kernel could not say; trust the rest).
  if (p.redirected.tcpBytes > 0) out.push('no-redirect');
  out.push(...directionFaults(p.redirected, p.bytes, 'redirected'));
  if (p.redirected.splice === undefined || p.redirected.splice < p.bytes) out.push('splice-redirected');
  out.push(...directionFaults(p.tcp, p.bytes, 'tcp'));
  return out;
}

export interface SockmapDecision {
  requested: SockmapMode;
  /** What the installer writes into the settings map. */
  effective: SockmapMode;
  /** The modes this kernel passed the probe for ('off' always). */
  allowed: SockmapMode[];
  /** Every fault found (empty when the probe did not run: `off` requested). */
  faults: SockmapFault[];
  /** The faults that refuse the requested mode. */
  refusedFor: SockmapFault[];
  kernel?: string;
  /** One line for the log, status and readiness. */
  message: string;
}

export function faultsRefusing(mode: SockmapMode, faults: readonly SockmapFault[]): SockmapFault[] {
  if (mode === 'off') return [];
  if (mode === 'on') return [...faults];
  return faults.filter((f) => PROXY_ONLY_FAULTS.has(f));
}

function describeProbe(p: SockmapProbe): string {
  return p.failedStep !== undefined ? `${p.failedStep} failed (errno ${p.errno ?? '?'}${p.log ? `: ${p.log}` : ''})` : `probe took ${p.ms} ms`;
}

/**
 * The mode to run with: the requested one when this kernel passed the probe
 * for it, else `off` with a message that names the faults. `probe` is
 * undefined when it was not run (`off` requested) or an Error when it could
 * not run at all (then nothing but `off` is trusted).
 */
export function decideSockmap(requested: SockmapMode, probe: SockmapProbe | Error | undefined): SockmapDecision {
  if (requested === 'off') {
    return { requested, effective: 'off', allowed: ['off'], faults: [], refusedFor: [], message: 'sockmap off (as configured): no socket joins the sockhash' };
  }
  if (probe === undefined || probe instanceof Error) {
    const why = probe instanceof Error ? probe.message : 'the probe did not run';
    return {
      requested,
      effective: 'off',
      allowed: ['off'],
      faults: ['unsupported'],
      refusedFor: ['unsupported'],
      message: `sockmap ${requested} refused, running with sockmap off: the kernel could not be probed for sockmap faults (${why})`,
    };
  }
  const faults = sockmapFaults(probe);
  const allowed: SockmapMode[] = (['off', 'proxy-only', 'on'] as const).filter((m) => faultsRefusing(m, faults).length === 0);
  const refusedFor = faultsRefusing(requested, faults);
  const where = `kernel ${probe.kernel}, ${describeProbe(probe)}`;
  if (refusedFor.length === 0) {
    const rest = faults.length ? `; faults that do not concern ${requested}: ${faults.join(', ')}` : '';
    return { requested, effective: requested, allowed, faults, refusedFor, kernel: probe.kernel, message: `sockmap ${requested}: this kernel passed the sockmap probe for it (${where}${rest})` };
  }
  const alt = requested === 'on' && allowed.includes('proxy-only') ? ' (proxy-only passes on this kernel)' : '';
  return {
    requested,
    effective: 'off',
    allowed,
    faults,
    refusedFor,
    kernel: probe.kernel,
    message: `sockmap ${requested} refused, running with sockmap off${alt}: ${refusedFor.map((f) => FAULT_TEXT[f]).join('; ')} (${where})`,
  };
}

/** The settings map's flags for a mode. */
export function sockmapFlags(mode: SockmapMode, f: { SOCKMAP_REDIRECT: number; SOCKMAP_PROXY_ONLY: number }): number {
  return mode === 'off' ? 0 : mode === 'on' ? f.SOCKMAP_REDIRECT : f.SOCKMAP_REDIRECT | f.SOCKMAP_PROXY_ONLY;
}
