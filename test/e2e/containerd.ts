// A private containerd for the end-to-end tests: its own root, state, gRPC
// socket and config (CRI plugin pointed at the test's CNI dirs and a locally
// built pause image), everything under one base dir. Leftovers of a killed run
// (its containerd and shims, found by PID through their command lines naming
// this base dir; mounts below it; its v1 cgroups) are removed before a start
// and by stop(). Only processes whose command line names this base dir are
// ever killed, and only by PID.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { removeCgroupTree } from '../../testing/sandbox/cgroup.js';
import { CriClient } from './cri-client.js';

export interface ContainerdOptions {
  /** Everything containerd writes goes below this dir (root, state, socket, config, log). */
  baseDir: string;
  cniBinDir: string;
  cniConfDir: string;
  /** Full image reference of the local pause image (CRI sandbox_image). */
  sandboxImage: string;
  /** The name of this test's cgroup dirs (<v1 hierarchy>/<name>): removed from every v1 hierarchy at cleanup. */
  cgroupName: string;
}

export interface ContainerdPaths {
  root: string;
  state: string;
  socket: string;
  config: string;
  log: string;
  pidFile: string;
}

export function containerdPaths(baseDir: string): ContainerdPaths {
  const d = join(baseDir, 'containerd');
  return {
    root: join(d, 'root'),
    state: join(d, 'state'),
    socket: join(d, 'containerd.sock'),
    config: join(d, 'config.toml'),
    log: join(d, 'containerd.log'),
    pidFile: join(d, 'containerd.pid'),
  };
}

const q = (s: string): string => JSON.stringify(s);

/**
 * containerd 1.6 config (version 2) with the CRI plugin as this test machine needs
 * it: everything under the base dir, cgroupfs driver, no hugetlb controller, no
 * oom_score_adj changes (each setting is explained below and in test/e2e/README.md).
 */
export function containerdConfig(o: ContainerdOptions): string {
  const p = containerdPaths(o.baseDir);
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return `version = 2
root = ${q(p.root)}
state = ${q(p.state)}
# Plugins that would touch shared places (/opt/containerd) or need other filesystems.
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = ${q(p.socket)}

[ttrpc]
  address = ${q(`${p.socket}.ttrpc`)}

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[${cri}]
  sandbox_image = ${q(o.sandboxImage)}
  # The test runner's oom_score_adj is not 0 here: don't try to lower it for containers.
  restrict_oom_score_adj = true
  # This VM has no hugetlb cgroup controller.
  disable_hugetlb_controller = true
  # The cgroupfs driver, as kubelet's cgroupfs driver (cgroup_parent = /<root>/kubepods/besteffort/pod<uid>).
  systemd_cgroup = false
  disable_apparmor = true
  enable_selinux = false
  # Pod netns bind mounts under our state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_tls_streaming = false
  max_concurrent_downloads = 1

  [${cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [${cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [${cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        # runc's state under ours, not /run/containerd/runc.
        Root = ${q(join(p.state, 'runc'))}

  [${cri}.cni]
    bin_dir = ${q(o.cniBinDir)}
    conf_dir = ${q(o.cniConfDir)}
    max_conf_num = 1
`;
}

function cmdline(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((s) => s !== '');
  } catch {
    return undefined;
  }
}

/** PIDs of containerd and its shims that belong to this base dir (their command line names its socket or config). */
export function processesOf(baseDir: string): number[] {
  const p = containerdPaths(baseDir);
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    const argv = cmdline(pid);
    if (!argv || argv.length === 0) continue;
    const exe = argv[0] ?? '';
    if (!/(^|\/)containerd(-shim[-a-z0-9]*)?$/.test(exe)) continue;
    if (argv.includes(p.config) || argv.includes(p.socket) || argv.includes(`unix://${p.socket}`)) out.push(pid);
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function killAndWait(pids: number[], signal: NodeJS.Signals, graceMs: number): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // gone
    }
  }
  const deadline = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < deadline) await sleep(50);
  for (const pid of pids.filter(alive)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  const hard = Date.now() + 5000;
  while (pids.some(alive) && Date.now() < hard) await sleep(50);
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Mount points at or below dir, deepest first. */
export function mountsBelow(dir: string): string[] {
  const base = dir.endsWith('/') ? dir : `${dir}/`;
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => unescapeMount(l.split(' ')[1] ?? ''))
    .filter((m) => m === dir || m.startsWith(base));
  return [...new Set(mounts)].sort((a, b) => b.length - a.length);
}

async function unmountBelow(dir: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const mounts = mountsBelow(dir);
    if (mounts.length === 0) return;
    for (const m of mounts) {
      const r = await execa('umount', [m], { reject: false });
      if (r.exitCode !== 0) await execa('umount', ['-l', m], { reject: false });
    }
  }
  const left = mountsBelow(dir);
  if (left.length > 0) throw new Error(`mounts left below ${dir}: ${left.join(', ')}`);
}

/** The cgroup v1 hierarchies (runc in hybrid mode makes the pod's cgroups in each of them too). */
export function cgroupV1Mounts(): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'cgroup' && f[1] !== undefined)
    .map((f) => unescapeMount(f[1] ?? ''));
}

/**
 * Remove all a containerd of this base dir may have left: its processes (by
 * PID), mounts below the base dir, its v1 cgroup dirs, the base dir.
 */
export async function cleanupContainerd(baseDir: string, cgroupName: string, cniNetworkName?: string): Promise<void> {
  if (!/^ml[a-z0-9]{1,12}$/.test(cgroupName)) throw new Error(`refusing cgroup name '${cgroupName}'`);
  const pids = processesOf(baseDir);
  if (pids.length > 0) await killAndWait(pids, 'SIGTERM', 5000);
  if (existsSync(baseDir)) await unmountBelow(baseDir);
  for (const m of cgroupV1Mounts()) await removeCgroupTree(join(m, cgroupName));
  if (cniNetworkName !== undefined) removeCniCache(cniNetworkName);
  rmSync(baseDir, { recursive: true, force: true });
}

/** libcni's result cache (containerd 1.6 keeps it in /var/lib/cni whatever the config says). */
export const CNI_CACHE_DIR = '/var/lib/cni/results';

/**
 * Cached CNI results of sandboxes on our network, left when a run was killed
 * before RemovePodSandbox: `<network>-<sandbox id>-<ifname>`, and the same
 * sandboxes' `cni-loopback-<sandbox id>-lo`.
 */
export function removeCniCache(networkName: string, dir = CNI_CACHE_DIR): void {
  if (!/^ml[a-z0-9-]{3,40}$/.test(networkName)) throw new Error(`refusing CNI network name '${networkName}'`);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const ours = new RegExp(`^${networkName.replace(/-/g, '\\-')}-([0-9a-f]{64})-[A-Za-z0-9_.-]+$`);
  for (const f of names) {
    const m = ours.exec(f);
    if (!m) continue;
    rmSync(join(dir, f), { force: true });
    rmSync(join(dir, `cni-loopback-${m[1] ?? ''}-lo`), { force: true });
  }
}

/**
 * Places containerd 1.6 and libcni use whatever the config says: the shims'
 * socket dir and libcni's result cache (children before parents). Their
 * entries go away with the pods; the dirs themselves are removed at teardown
 * when they did not exist before the test and are empty.
 */
export const SHARED_DIRS = ['/run/containerd/s', '/run/containerd/runc', '/run/containerd', '/var/lib/cni/results', '/var/lib/cni'];

export function missingSharedDirs(): string[] {
  return SHARED_DIRS.filter((d) => !existsSync(d));
}

/** rmdir each dir that is empty (never anything with content). */
export function removeEmptyDirs(dirsChildrenFirst: readonly string[]): void {
  for (const d of dirsChildrenFirst) {
    try {
      rmdirSync(d);
    } catch {
      // not empty, or already gone
    }
  }
}

export class Containerd {
  readonly opts: ContainerdOptions;
  readonly paths: ContainerdPaths;
  readonly cri: CriClient;
  readonly #proc: ResultPromise;
  readonly pid: number;

  private constructor(opts: ContainerdOptions, proc: ResultPromise, pid: number) {
    this.opts = opts;
    this.paths = containerdPaths(opts.baseDir);
    this.#proc = proc;
    this.pid = pid;
    this.cri = new CriClient(this.paths.socket);
  }

  /** Start containerd with a fresh config; resolves once its CRI answers Version (bounded). */
  static async start(opts: ContainerdOptions, timeoutMs = 20_000): Promise<Containerd> {
    const p = containerdPaths(opts.baseDir);
    mkdirSync(p.root, { recursive: true, mode: 0o700 });
    mkdirSync(p.state, { recursive: true, mode: 0o700 });
    writeFileSync(p.config, containerdConfig(opts));
    const proc = execa('containerd', ['--config', p.config, '--log-level', 'info'], {
      stdin: 'ignore',
      stdout: { file: p.log, append: true },
      stderr: { file: p.log, append: true },
      reject: false,
      cleanup: true,
    });
    if (proc.pid === undefined) throw new Error('containerd did not start');
    writeFileSync(p.pidFile, `${proc.pid}\n`);
    const c = new Containerd(opts, proc, proc.pid);
    let exited = false;
    void proc.finally(() => {
      exited = true;
    });
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      if (exited) throw new Error(`containerd exited at start:\n${c.logTail()}`);
      if (existsSync(p.socket)) {
        try {
          await c.cri.version(2000);
          return c;
        } catch (err) {
          last = err;
        }
      }
      if (Date.now() > deadline) {
        await c.stop().catch(() => undefined);
        throw new Error(`containerd's CRI did not answer within ${timeoutMs} ms (${last instanceof Error ? last.message : 'no socket'}):\n${c.logTail()}`);
      }
      await sleep(100);
    }
  }

  logTail(lines = 40): string {
    try {
      return readFileSync(this.paths.log, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** `ctr images import` into the CRI namespace (k8s.io). */
  async importImage(archive: string): Promise<void> {
    const r = await execa('ctr', ['-a', this.paths.socket, '-n', 'k8s.io', 'images', 'import', '--all-platforms', archive], { reject: false, timeout: 60_000 });
    if (r.exitCode !== 0) throw new Error(`ctr images import failed (${r.exitCode}): ${r.stdout}\n${r.stderr}`);
  }

  /** Stop containerd (SIGTERM by PID, SIGKILL after the grace), then its shims. */
  async stop(graceMs = 10_000): Promise<void> {
    this.cri.close();
    await killAndWait([this.pid], 'SIGTERM', graceMs);
    await this.#proc.catch(() => undefined);
    const shims = processesOf(this.opts.baseDir);
    if (shims.length > 0) await killAndWait(shims, 'SIGTERM', 3000);
  }
}
