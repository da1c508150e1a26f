// Boot a pinned Debian kernel under qemu (TCG) and run one command in it.
//
//   tsx scripts/kernels/boot.ts <kernel> [--timeout S] -- <command> [args...]
//
// The guest's initramfs holds a static busybox, the kernel's modules for 9p and
// virtio (and for tc and veth: sch_ingress, cls_bpf, veth) and scripts/kernels/init.sh.
// The host's root is shared read-only over 9p and the command runs chrooted into
// it, so host binaries (node, bpftool, ip) and the repo (at its host path) are
// there as they are; /tmp, /run, /sys/fs/bpf and /sys/fs/cgroup (cgroup2) are
// the guest's own. The command's output and exit status come back over the
// serial console between markers.
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { type UnpackedKernel, ensureKernel } from './fetch.js';
import { pinByName, repoRoot } from './pins.js';

/**
 * Modules the guest loads (with their dependencies), when the kernel builds them
 * as modules: 9p and virtio to reach the host's root; tc's clsact and cls_bpf;
 * veth and bridge for the sandbox node's pods (testing/sandbox); legacy iptables'
 * filter table with the tcp match (the getsockopt test's IPT_SO_GET_ENTRIES).
 */
export const GUEST_MODULES: readonly string[] = ['virtio_pci', '9pnet_virtio', '9p', 'sch_ingress', 'cls_bpf', 'veth', 'bridge', 'iptable_filter', 'xt_tcpudp'];
const BUSYBOX = '/bin/busybox';
const INIT = join(repoRoot, 'scripts', 'kernels', 'init.sh');

function modName(file: string): string {
  return basename(file).replace(/\.ko(\.xz|\.zst|\.gz)?$/, '').replace(/-/g, '_');
}

function walk(dir: string, out: Map<string, string>): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (/\.ko(\.xz|\.zst|\.gz)?$/.test(e.name)) out.set(modName(e.name), p);
  }
}

async function moduleBytes(path: string): Promise<Buffer> {
  if (path.endsWith('.ko')) return readFileSync(path);
  const tool = path.endsWith('.xz') ? 'xz' : path.endsWith('.zst') ? 'zstd' : 'gzip';
  const r = await execa(tool, ['-dc', path], { encoding: 'buffer', stripFinalNewline: false });
  return Buffer.from(r.stdout);
}

function dependsOf(ko: Buffer): string[] {
  const at = ko.indexOf('depends=');
  if (at < 0) return [];
  const end = ko.indexOf(0, at);
  return ko.subarray(at + 'depends='.length, end).toString('latin1').split(',').filter((d) => d !== '');
}

/** The initramfs of one kernel (cached in .build/kernels/<name>/initramfs.cpio). */
export async function buildInitramfs(k: UnpackedKernel): Promise<{ path: string; modules: string[] }> {
  const dir = join(k.root, '..');
  const out = join(dir, 'initramfs.cpio');
  const list = join(dir, 'initramfs.modules');
  const inputs = [INIT, BUSYBOX, join(dir, 'unpacked'), new URL(import.meta.url).pathname];
  if (existsSync(out) && existsSync(list) && inputs.every((f) => statSync(f).mtimeMs <= statSync(out).mtimeMs)) {
    return { path: out, modules: readFileSync(list, 'utf8').split('\n').filter((m) => m !== '') };
  }
  const files = new Map<string, string>();
  walk(k.modulesDir, files);
  const order: string[] = [];
  const bytes = new Map<string, Buffer>();
  const visit = async (name: string, chain: string[]): Promise<void> => {
    if (order.includes(name)) return;
    if (chain.includes(name)) throw new Error(`module dependency loop: ${[...chain, name].join(' -> ')}`);
    const file = files.get(name);
    if (file === undefined) return; // built in (or not built at all: the guest reports what is missing)
    const b = await moduleBytes(file);
    for (const d of dependsOf(b)) await visit(d, [...chain, name]);
    bytes.set(name, b);
    order.push(name);
  };
  for (const m of GUEST_MODULES) await visit(m, []);
  const stage = mkdtempSync(join(tmpdir(), 'mlk-initramfs-'));
  try {
    mkdirSync(join(stage, 'bin'));
    mkdirSync(join(stage, 'modules'));
    for (const d of ['proc', 'sys', 'dev', 'host', 'tmp']) mkdirSync(join(stage, d));
    copyFileSync(BUSYBOX, join(stage, 'bin', 'busybox'));
    copyFileSync(INIT, join(stage, 'init'));
    chmodSync(join(stage, 'init'), 0o755);
    chmodSync(join(stage, 'bin', 'busybox'), 0o755);
    for (const [name, b] of bytes) writeFileSync(join(stage, 'modules', `${name}.ko`), b);
    writeFileSync(join(stage, 'modules.order'), order.map((m) => `${m}\n`).join(''));
    await cpioFrom(stage, out);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  writeFileSync(list, order.map((m) => `${m}\n`).join(''));
  return { path: out, modules: order };
}

async function cpioFrom(dir: string, out: string): Promise<void> {
  const names = await execa('find', ['.', '-mindepth', '1'], { cwd: dir });
  const r = await execa(BUSYBOX, ['cpio', '-o', '-H', 'newc'], { cwd: dir, input: `${names.stdout}\n`, encoding: 'buffer', stripFinalNewline: false });
  writeFileSync(out, r.stdout);
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface GuestRunOptions {
  /** The command and its arguments (host paths: the guest sees the host's root). */
  command: readonly string[];
  cwd?: string;
  env?: Record<string, string>;
  /** Kill qemu after this long (default 120 s). */
  timeoutMs?: number;
  memory?: string;
  /** Called with each line of the serial console as it arrives. */
  onLine?: (line: string) => void;
}

export interface GuestRunResult {
  kernel: string;
  release: string;
  /** The command's exit status; null when it did not finish (timeout, guest failure). */
  exitCode: number | null;
  /** What the command printed (stdout and stderr together), between the markers. */
  output: string;
  /** Everything the serial console printed. */
  console: string;
  timedOut: boolean;
  /** Host time from starting qemu to the guest's READY marker. */
  bootMs: number | null;
  /** Host time the command ran (BEGIN to END marker). */
  runMs: number | null;
  /** Host time from starting qemu to its exit. */
  totalMs: number;
  /** The guest's own uptime at READY (seconds, from /proc/uptime). */
  guestUptimeAtReady: number | null;
}

/** Boot `kernelName` (a pin of scripts/kernels/pins.ts), run the command, power off. */
export async function runInGuest(kernelName: string, opts: GuestRunOptions): Promise<GuestRunResult> {
  const k = await ensureKernel(pinByName(kernelName));
  const base = await buildInitramfs(k);
  const nonce = randomBytes(6).toString('hex');
  const work = mkdtempSync(join(tmpdir(), 'mlk-run-'));
  try {
    const extra = join(work, 'extra');
    mkdirSync(extra);
    const env = Object.entries({ PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/tmp', ...opts.env });
    const script = [
      ...env.map(([key, v]) => `export ${key}=${shellQuote(v)}`),
      `cd ${shellQuote(opts.cwd ?? repoRoot)} || exit 125`,
      `exec ${opts.command.map(shellQuote).join(' ')}`,
      '',
    ].join('\n');
    writeFileSync(join(extra, 'cmd'), script);
    writeFileSync(join(extra, 'nonce'), `${nonce}\n`);
    // Dirs the guest's own /tmp and /run must not hide (a clone below /tmp, as CI may make).
    writeFileSync(join(extra, 'keep'), `${[...new Set([repoRoot, opts.cwd ?? repoRoot])].join('\n')}\n`);
    const extraCpio = join(work, 'extra.cpio');
    await cpioFrom(extra, extraCpio);
    const initrd = join(work, 'initrd.cpio');
    writeFileSync(initrd, Buffer.concat([readFileSync(base.path), readFileSync(extraCpio)]));
    return await runQemu(k, initrd, nonce, opts);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function runQemu(k: UnpackedKernel, initrd: string, nonce: string, opts: GuestRunOptions): Promise<GuestRunResult> {
  const args = [
    '-accel', 'tcg', '-cpu', 'max', '-nodefaults', '-no-reboot', '-serial', 'stdio', '-nographic', '-monitor', 'none',
    '-m', opts.memory ?? '1G',
    '-kernel', k.vmlinuz, '-initrd', initrd,
    '-append', 'console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init',
    '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
  ];
  const t0 = Date.now();
  const timeoutMs = opts.timeoutMs ?? 120_000;
  return new Promise((resolvePromise, reject) => {
    const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let consoleText = '';
    let pending = '';
    let bootMs: number | null = null;
    let beginAt: number | null = null;
    let endAt: number | null = null;
    let guestUptimeAtReady: number | null = null;
    let exitCode: number | null = null;
    let timedOut = false;
    const out: string[] = [];
    let inCommand = false;
    let stderr = '';
    const onLine = (raw: string): void => {
      const line = raw.replace(/\r$/, '');
      opts.onLine?.(line);
      const ready = new RegExp(`@@ML-GUEST-READY ${nonce} uptime=([0-9.]+)`).exec(line);
      if (ready) {
        bootMs = Date.now() - t0;
        guestUptimeAtReady = Number(ready[1]);
        return;
      }
      if (line.includes(`@@ML-GUEST-BEGIN ${nonce}`)) {
        beginAt = Date.now();
        inCommand = true;
        return;
      }
      const end = new RegExp(`@@ML-GUEST-END ${nonce} exit=(\\d+)`).exec(line);
      if (end) {
        endAt = Date.now();
        exitCode = Number(end[1]);
        inCommand = false;
        return;
      }
      if (inCommand) out.push(line);
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      consoleText += chunk;
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        onLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`qemu-system-x86_64 did not start (apt-get install qemu-system-x86): ${err.message}`));
    });
    child.on('close', () => {
      clearTimeout(timer);
      if (pending !== '') onLine(pending);
      resolvePromise({
        kernel: k.pin.name,
        release: k.release,
        exitCode,
        output: out.join('\n'),
        console: stderr === '' ? consoleText : `${consoleText}\n[qemu stderr]\n${stderr}`,
        timedOut,
        bootMs,
        runMs: beginAt !== null && endAt !== null ? endAt - beginAt : null,
        totalMs: Date.now() - t0,
        guestUptimeAtReady,
      });
    });
  });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const dash = argv.indexOf('--');
  const own = dash >= 0 ? argv.slice(0, dash) : argv;
  const command = dash >= 0 ? argv.slice(dash + 1) : ['uname', '-a'];
  const kernel = own[0];
  if (kernel === undefined) throw new Error('usage: tsx scripts/kernels/boot.ts <kernel> [--timeout S] [--console] -- <command> [args...]');
  const t = own.indexOf('--timeout');
  const timeoutMs = t >= 0 ? Number(own[t + 1]) * 1000 : 120_000;
  const showConsole = own.includes('--console');
  const r = await runInGuest(kernel, { command, timeoutMs, onLine: showConsole ? (l) => console.error(`[${kernel}] ${l}`) : undefined });
  if (r.output !== '') console.log(r.output);
  console.error(
    `kernel ${r.kernel} (${r.release}): exit ${r.exitCode ?? 'none'}${r.timedOut ? ' (timed out)' : ''}; ` +
      `ready after ${r.bootMs ?? '?'} ms (guest uptime ${r.guestUptimeAtReady ?? '?'} s), command ${r.runMs ?? '?'} ms, qemu ${r.totalMs} ms`,
  );
  if (r.exitCode === null && !showConsole) console.error(r.console.slice(-3000));
  process.exit(r.exitCode ?? 124);
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((err: unknown) => {
    console.error(`boot: ${(err as Error).message}`);
    process.exit(1);
  });
}
