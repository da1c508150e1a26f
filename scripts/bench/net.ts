// The data-path benchmark: one client pod per (repetition, mode), one server
// pod, HAProxy as the sidecar proxy in the client pod (uid 1337, container
// istio-proxy), wrk and iperf3 as the app (uid 1000).
//
// Modes:
//   limit       the app connects to the proxy itself (127.0.0.1:15002 for HTTP,
//               :15003 for iperf3), fixed `server` lines: no interception at all
//   iptables    Istio's rules (istio-cni's basic golden) restored into the client
//               pod's netns; the app connects to the server, REDIRECT to 15001
//   ml-off      meshlane's datapath, the client pod registered, sockmap off
//   ml-on       the same with SET_F.SOCKMAP_REDIRECT (app <-> proxy sockets
//               bypass TCP/IP through sk_msg redirect)
// In the three intercepted modes HAProxy's `server orig 0.0.0.0:0` connects to
// the original destination it reads with SO_ORIGINAL_DST; a verification
// request per mode checks, from HAProxy's own log, that it connected to the
// server's address and port (not back to itself).
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import type { Pod, SandboxNode, SpawnedProcess } from '../../testing/sandbox/node.js';
import { SET_F } from '../../src/bpf/layout.js';
import { installDatapath, removeDatapath } from '../../src/bpf/loader.js';
import { DEFAULT_INTERCEPTION, encodePodConfig } from '../../src/bpf/pod-config.js';
import { readCounters, registerPod, unregisterPod, writeSettings } from '../../src/bpf/registry.js';
import { log, parseIperf, parseWrk, type WrkResult } from './util.js';
import { errorMessage } from '../../src/describe-error.js';

export const MODES = ['limit', 'iptables', 'ml-off', 'ml-on'] as const;
export type Mode = (typeof MODES)[number];
export const MODE_TITLE: Record<Mode, string> = {
  limit: 'explicit proxy (limit)',
  iptables: 'Istio iptables',
  'ml-off': 'meshlane, sockmap off',
  'ml-on': 'meshlane, sockmap on',
};

export const APP = { uid: 1000, gid: 1000 } as const;
export const PROXY = { uid: 1337, gid: 1337, container: 'istio-proxy' } as const;
const HTTP_PORT = 8080;
const IPERF_PORT = 5201;

export interface NetOptions {
  reps: number;
  wrkSeconds: number;
  connSeconds: number;
  iperfSeconds: number;
  connections: readonly number[];
  sizes: readonly number[];
  /** Modes not run, with the reason (e.g. the installer's sockmap probe refuses sockmap on). */
  skip?: Partial<Record<Mode, string>>;
  bpfObject: string;
  goldenFile: string;
  cfgDir: string;
}

/** One measured value: metric key (e.g. "rps@10"), mode, repetition. */
export interface Sample {
  metric: string;
  mode: Mode;
  rep: number;
  value: number;
}

export interface NetResult {
  samples: Sample[];
  /** What each mode's verification saw (HAProxy log lines, counters). */
  verification: Record<string, string>;
  errors: string[];
}

/** istio-cni's golden (the dry-run text of its nat rules) as iptables-restore input. */
export function goldenToRestore(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const out: string[] = [];
  for (const l of lines) {
    if (/^\*\s*nat$/.test(l)) out.push('*nat');
    else if (l.startsWith('-N ')) out.push(`:${l.slice(3).trim()} - [0:0]`);
    else out.push(l);
  }
  if (out[out.length - 1] !== 'COMMIT') out.push('COMMIT');
  return `${out.join('\n')}\n`;
}

/** The app: HAProxy answering every GET on HTTP_PORT with 200 and `body`. */
export function haproxyServerCfg(body = 'ok'): string {
  return `global
  maxconn 8000
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s
frontend http
  bind 0.0.0.0:${HTTP_PORT}
  http-request return status 200 content-type text/plain string "${body}"
`;
}

/** The sidecar: 15001 transparent (SO_ORIGINAL_DST), 15002/15003 explicit with fixed servers. */
function haproxyProxyCfg(server: string, withLog: boolean): string {
  const logLines = withLog ? '  log stdout format raw local0\n  log-format "frontend %f conn %ci:%cp dst %fi:%fp server %si:%sp bytes %U/%B state %ts"\n' : '';
  return `global
  maxconn 8000
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
${logLines}frontend outbound
  bind 0.0.0.0:15001
  # No original destination: HAProxy would connect to itself (a loop); refuse, as Envoy does.
  tcp-request connection reject if { dst_port 15001 }
  default_backend orig
backend orig
  server orig 0.0.0.0:0
frontend explicit_http
  bind 127.0.0.1:15002
  default_backend fixed_http
backend fixed_http
  server s ${server}:${HTTP_PORT}
frontend explicit_iperf
  bind 127.0.0.1:15003
  default_backend fixed_iperf
backend fixed_iperf
  server s ${server}:${IPERF_PORT}
`;
}

export function writeCfg(dir: string, name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, 0o644);
  return p;
}

export async function sysctls(pod: Pod): Promise<void> {
  for (const kv of ['net.ipv4.ip_local_port_range=1024 65000', 'net.ipv4.tcp_tw_reuse=1', 'net.core.somaxconn=4096']) {
    const r = await pod.run('sysctl', ['-q', '-w', kv]);
    if (r.exitCode !== 0) throw new Error(`sysctl ${kv} in ${pod.name}: ${r.stderr}`);
  }
}

export async function startHaproxy(pod: Pod, cfg: string, opts: { uid: number; gid: number; container?: string }, port: number): Promise<SpawnedProcess> {
  const p = await pod.spawn('haproxy', ['-db', '-f', cfg], opts);
  // Wait until it listens (checked with ss: a probe connection to 15001 would
  // have no original destination).
  try {
    await waitListening(pod, port, p);
  } catch (err) {
    await p.kill();
    throw err;
  }
  return p;
}

/** Until something listens on `port` in the pod (checked with ss, without connecting). */
export async function waitListening(pod: Pod, port: number, proc: SpawnedProcess): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await pod.run('ss', ['-Htln', `sport = :${port}`]);
    if (r.stdout.trim() !== '') return;
    if (!proc.running) break;
    await sleep(30);
  }
  throw new Error(`${proc.command} did not listen on ${port}: ${proc.stderr()}`);
}

export async function iptablesRestore(pod: Pod, input: string): Promise<void> {
  const r = await execa('nsenter', [`--net=${pod.netnsPath}`, '--', 'iptables-restore', '-w', '5'], { input, reject: false });
  if (r.exitCode !== 0) throw new Error(`iptables-restore in ${pod.name}: ${r.stderr}`);
}

async function iptablesSave(pod: Pod): Promise<string> {
  const r = await execa('nsenter', [`--net=${pod.netnsPath}`, '--', 'iptables-save', '-t', 'nat'], { reject: false });
  return r.stdout;
}

function settings(flags: number): { proxy_uid: number; proxy_gid: number; outbound_port: number; inbound_port: number; dns_port: number; flags: number } {
  return { proxy_uid: 0, proxy_gid: 0, outbound_port: 0, inbound_port: 0, dns_port: 0, flags };
}

/**
 * CPU time (µs) used so far by the processes of these pods: cgroup v2
 * cpu.stat usage_usec of each pod cgroup (app + sidecar containers). Without
 * CONFIG_IRQ_TIME_ACCOUNTING the softirq network work done in a task's context
 * is charged to that task, so this is most of the data path's cost, and it is
 * far less sensitive to other load on the machine than rates are.
 */
function cpuUsec(pods: readonly Pod[]): number {
  let sum = 0;
  for (const p of pods) {
    const m = /^usage_usec (\d+)$/m.exec(readFileSync(join(p.cgroupPath, 'cpu.stat'), 'utf8'));
    sum += m ? Number(m[1]) : Number.NaN;
  }
  return sum;
}

async function wrk(pod: Pod, server: Pod, url: string, conns: number, seconds: number, extra: string[] = []): Promise<WrkResult & { cpuUsPerReq: number }> {
  const threads = Math.min(2, conns);
  const cpu0 = cpuUsec([pod, server]);
  const r = await pod.run('wrk', ['-t', String(threads), '-c', String(conns), '-d', `${seconds}s`, '--timeout', '5s', '--latency', ...extra, url], {
    ...APP,
    timeoutMs: (seconds + 20) * 1000,
  });
  if (r.exitCode !== 0) throw new Error(`wrk ${url} -c ${conns}: exit ${String(r.exitCode)} ${r.stderr}`);
  const cpu = cpuUsec([pod, server]) - cpu0;
  const w = parseWrk(r.stdout);
  return { ...w, cpuUsPerReq: cpu / w.requests };
}

/**
 * One iperf3 test against a fresh one-shot server (`iperf3 -s -1`) in the server
 * pod: a long-lived iperf3 server was seen to stay "busy" after a test ended,
 * and to stall the next one.
 */
async function iperf(pod: Pod, server: Pod, host: string, port: number, size: number, seconds: number): Promise<{ bitsPerSec: number; cpuUsPerMiB: number }> {
  const srv = await server.spawn('iperf3', ['-s', '-1', '-p', String(IPERF_PORT), '--rcv-timeout', '10000'], APP);
  try {
    await waitListening(server, IPERF_PORT, srv);
    const cpu0 = cpuUsec([pod, server]);
    const r = await pod.run('iperf3', ['-c', host, '-p', String(port), '-t', String(seconds), '-l', String(size), '-J', '--connect-timeout', '3000'], {
      ...APP,
      timeoutMs: (seconds + 20) * 1000,
    });
    const cpu = cpuUsec([pod, server]) - cpu0;
    const { bitsPerSec, bytes, error } = parseIperf(r.stdout);
    if (process.env['BENCH_DEBUG'] && (r.exitCode !== 0 || error)) {
      for (const p of [pod, server]) log(`iperf3 failed; ${p.name} sockets:\n${(await p.run('ss', ['-tanp'])).stdout.split('\n').filter((l) => !l.startsWith('TIME-WAIT')).join('\n')}`);
      log(`iperf3 server: ${srv.lines().join('\n')} ${srv.stderr()}`);
    }
    if (r.exitCode !== 0 || error) throw new Error(`iperf3 -l ${size} to ${host}:${port}: exit ${String(r.exitCode)}${r.timedOut ? ' (timed out)' : ''} ${error ?? ''} ${r.stderr.slice(0, 300)}`);
    return { bitsPerSec, cpuUsPerMiB: cpu / (bytes / 1048576) };
  } finally {
    await srv.kill('SIGTERM', 2000);
  }
}

export interface NetContext {
  node: SandboxNode;
  server: Pod;
  datapathInstalled: boolean;
}

/** Server pod: haproxy as HTTP responder on 8080 (uid 1000); iperf3 servers are started per test. */
export async function startServer(node: SandboxNode, cfgDir: string): Promise<Pod> {
  const server = await node.addPod({ name: 'server' });
  await sysctls(server);
  await startHaproxy(server, writeCfg(cfgDir, 'server.cfg', haproxyServerCfg()), APP, HTTP_PORT);
  return server;
}

/** Verify interception with a logging proxy: one request, HAProxy's log must show the server's address. */
async function verify(ctx: NetContext, client: Pod, mode: Mode, cfgDir: string): Promise<string> {
  const cfg = writeCfg(cfgDir, `proxy-log-${client.name}.cfg`, haproxyProxyCfg(ctx.server.ipv4, true));
  const p = await startHaproxy(client, cfg, PROXY, 15001);
  try {
    const url = mode === 'limit' ? 'http://127.0.0.1:15002/' : `http://${ctx.server.ipv4}:${HTTP_PORT}/`;
    const r = await client.run('curl', ['-sS', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', url], { ...APP, timeoutMs: 10_000 });
    if (r.stdout.trim() !== '200') throw new Error(`${mode}: verification request got '${r.stdout}' ${r.stderr}`);
    const want = `server ${ctx.server.ipv4}:${HTTP_PORT}`;
    // HAProxy logs as the frontend address (%fi:%fp) the destination it read: the
    // original destination (SO_ORIGINAL_DST) on the transparent frontend.
    const front = mode === 'limit' ? 'frontend explicit_http ' : `frontend outbound `;
    let line: string | undefined;
    for (let i = 0; i < 40 && !line; i++) {
      line = p.lines().find((l) => l.includes(want) && l.includes(front) && (mode === 'limit' || l.includes(`dst ${ctx.server.ipv4}:${HTTP_PORT} `)));
      if (!line) await sleep(50);
    }
    if (!line) throw new Error(`${mode}: haproxy did not log a connection via ${front} to ${want}; log: ${p.lines().join(' | ')} ${p.stderr()}`);
    return line;
  } finally {
    await p.kill();
  }
}

export async function runNet(node: SandboxNode, opts: NetOptions, onProgress: (r: NetResult) => void): Promise<NetResult> {
  const result: NetResult = { samples: [], verification: {}, errors: [] };
  mkdirSync(opts.cfgDir, { recursive: true });
  chmodSync(opts.cfgDir, 0o755);
  const restore = goldenToRestore(readFileSync(opts.goldenFile, 'utf8'));
  const loc = { pinDir: node.pinDir, cgroupDir: node.cgroupRoot };
  const server = await startServer(node, opts.cfgDir);
  const ctx: NetContext = { node, server, datapathInstalled: false };
  log(`server pod ${server.ipv4}: haproxy http :${HTTP_PORT}; one-shot iperf3 servers on :${IPERF_PORT}`);
  for (let rep = 1; rep <= opts.reps; rep++) {
    // Rotate the order of the modes between repetitions (drift does not favour one mode).
    const only = process.env['BENCH_MODES']?.split(',');
    const order = MODES.map((_, i) => MODES[(i + rep - 1) % MODES.length] as Mode).filter((m) => (!only || only.includes(m)) && !opts.skip?.[m]);
    for (const mode of order) {
      const started = Date.now();
      const client = await node.addPod({ name: `c${rep}-${mode}` });
      try {
        await sysctls(client);
        const meshlane = mode === 'ml-off' || mode === 'ml-on';
        if (mode === 'iptables') {
          await iptablesRestore(client, restore);
        }
        if (meshlane) {
          if (!ctx.datapathInstalled) {
            await installDatapath(loc, opts.bpfObject);
            ctx.datapathInstalled = true;
          }
          await writeSettings(node.pinDir, settings(mode === 'ml-on' ? SET_F.SOCKMAP_REDIRECT : 0));
          await registerPod(node.pinDir, { cgroupId: client.cgroupId, ipv4: client.ipv4, ipv6: client.ipv6, config: encodePodConfig(DEFAULT_INTERCEPTION) });
        } else if (ctx.datapathInstalled) {
          // The baselines run without any meshlane program attached.
          await removeDatapath(loc);
          ctx.datapathInstalled = false;
        }
        const before = meshlane ? await readCounters(node.pinDir) : undefined;
        const vline = await verify(ctx, client, mode, opts.cfgDir);
        if (rep === 1) {
          let v = vline;
          if (mode === 'iptables') v += `\n  nat rules in the client netns: ${(await iptablesSave(client)).split('\n').filter((l) => l.startsWith('-A')).length} (-A lines of iptables-save)`;
          result.verification[mode] = v;
        }
        const proxy = await startHaproxy(client, writeCfg(opts.cfgDir, `proxy-${client.name}.cfg`, haproxyProxyCfg(server.ipv4, false)), PROXY, 15001);
        try {
          const httpUrl = mode === 'limit' ? 'http://127.0.0.1:15002/' : `http://${server.ipv4}:${HTTP_PORT}/`;
          const [iperfHost, iperfPort] = mode === 'limit' ? ['127.0.0.1', 15003] : [server.ipv4, IPERF_PORT];
          for (const c of opts.connections) {
            const w = await wrk(client, server, httpUrl, c, opts.wrkSeconds);
            if (w.errors > 0) result.errors.push(`${mode} rep ${rep} wrk -c ${c}: ${w.errors} errors`);
            result.samples.push({ metric: `rps@${c}`, mode, rep, value: w.requestsPerSec });
            result.samples.push({ metric: `p50@${c}`, mode, rep, value: w.p50Us });
            result.samples.push({ metric: `p99@${c}`, mode, rep, value: w.p99Us });
            result.samples.push({ metric: `cpureq@${c}`, mode, rep, value: w.cpuUsPerReq });
          }
          const cc = await wrk(client, server, httpUrl, 10, opts.connSeconds, ['-H', 'Connection: close']);
          if (cc.errors > 0) result.errors.push(`${mode} rep ${rep} connection rate: ${cc.errors} errors`);
          result.samples.push({ metric: 'cps', mode, rep, value: cc.requestsPerSec });
          result.samples.push({ metric: 'cpuconn', mode, rep, value: cc.cpuUsPerReq });
          for (const size of opts.sizes) {
            const ip = await iperf(client, server, iperfHost, iperfPort, size, opts.iperfSeconds);
            result.samples.push({ metric: `tput@${size}`, mode, rep, value: ip.bitsPerSec });
            result.samples.push({ metric: `cpumib@${size}`, mode, rep, value: ip.cpuUsPerMiB });
          }
        } finally {
          await proxy.kill();
        }
        if (meshlane && before) {
          const after = await readCounters(node.pinDir);
          const d = (k: keyof typeof after): number => Number(after[k] - before[k]);
          const summary = `redirect out ${d('connect4_redirect_out')}, getsockopt answered ${d('getsockopt_answered')}, miss ${d('getsockopt_miss')}, sockhash added ${d('sockops_sockhash_added')}, sk_msg redirected ${d('redirect_ok')}, passed ${d('redirect_pass')}`;
          if (d('getsockopt_answered') === 0) throw new Error(`${mode}: no getsockopt answered by meshlane (${summary})`);
          if (mode === 'ml-on' && d('redirect_ok') === 0) throw new Error(`${mode}: sockmap on but no sk_msg redirect (${summary})`);
          if (mode === 'ml-off' && d('redirect_ok') !== 0) throw new Error(`${mode}: sockmap off but sk_msg redirects (${summary})`);
          if (rep === 1) result.verification[mode] = `${result.verification[mode] ?? ''}\n  meshlane counters over the run: ${summary}`;
          await unregisterPod(node.pinDir, { cgroupId: client.cgroupId, ipv4: client.ipv4, ipv6: client.ipv6 });
        }
      } catch (err) {
        result.errors.push(`${mode} rep ${rep}: ${errorMessage(err)}`);
        log(`ERROR ${mode} rep ${rep}: ${errorMessage(err)}`);
      } finally {
        await node.removePod(client);
      }
      log(`rep ${rep}/${opts.reps} ${mode}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
      onProgress(result);
    }
  }
  if (ctx.datapathInstalled) {
    await removeDatapath(loc);
    ctx.datapathInstalled = false;
  }
  return result;
}
