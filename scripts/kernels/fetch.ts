// Fetch the matrix's Debian kernel packages with `apt-get download` (never
// installed) and unpack them with `dpkg-deb -x`, into .build/kernels/.
//
//   tsx scripts/kernels/fetch.ts            every pinned kernel
//   tsx scripts/kernels/fetch.ts 5.10 6.1   some
//
// apt runs with a private configuration (its own sources list, lists and cache
// under .build/kernels/apt): the machine's sources and state are not touched.
// A kernel already unpacked is not fetched again.
import { execa } from 'execa';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { APT_SUITES, DEBIAN_KEYRING, KERNEL_PINS, type KernelPin, kernelsBuildDir, pinByName } from './pins.js';
import { acquireLock } from '../../src/sys/lock.js';

export interface UnpackedKernel {
  pin: KernelPin;
  /** The package's files (boot/, lib/modules/…). */
  root: string;
  vmlinuz: string;
  /** `uname -r` of the kernel, e.g. 5.10.0-46-amd64. */
  release: string;
  /** lib/modules/<release>/kernel inside `root`. */
  modulesDir: string;
}

const aptDir = join(kernelsBuildDir, 'apt');
const debsDir = join(kernelsBuildDir, 'debs');

function aptOptions(): string[] {
  return [
    '-o', `Dir::Etc::sourcelist=${join(aptDir, 'sources.list')}`,
    '-o', 'Dir::Etc::sourceparts=-',
    '-o', `Dir::State::Lists=${join(aptDir, 'lists')}`,
    '-o', `Dir::Cache=${join(aptDir, 'cache')}`,
    '-o', 'Dir::State::status=/dev/null',
    '-o', 'APT::Get::List-Cleanup=0',
    '-o', 'APT::Sandbox::User=root',
    '-o', 'Debug::NoLocking=1',
  ];
}

let updated = false;

/** `apt-get update` of the private sources (once per process). */
async function aptUpdate(): Promise<void> {
  if (updated) return;
  mkdirSync(join(aptDir, 'lists', 'partial'), { recursive: true });
  mkdirSync(join(aptDir, 'cache', 'archives', 'partial'), { recursive: true });
  if (!existsSync(DEBIAN_KEYRING)) throw new Error(`${DEBIAN_KEYRING} is missing: install debian-archive-keyring`);
  const lines = APT_SUITES.map((s) => `deb [signed-by=${DEBIAN_KEYRING}] ${s.uri} ${s.suite} main`);
  writeFileSync(join(aptDir, 'sources.list'), `${lines.join('\n')}\n`);
  const r = await execa('apt-get', [...aptOptions(), '-q', 'update'], { reject: false, all: true });
  if (r.exitCode !== 0) throw new Error(`apt-get update (private sources ${join(aptDir, 'sources.list')}) failed:\n${r.all}`);
  updated = true;
}

async function candidates(pin: KernelPin): Promise<string> {
  const series = pin.name.replace('.', '\\.');
  const r = await execa('apt-cache', [...aptOptions(), 'search', '--names-only', `^linux-image-${series}[.-].*-amd64$`], { reject: false });
  const names = r.stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n !== '' && !n.includes('-rt-') && !n.includes('cloud'));
  const out: string[] = [];
  for (const n of names.sort().slice(-4)) {
    const p = await execa('apt-cache', [...aptOptions(), 'show', '--no-all-versions', n], { reject: false });
    const v = /^Version: (.*)$/m.exec(p.stdout)?.[1];
    out.push(v === undefined ? n : `${n}=${v}`);
  }
  return out.length > 0 ? out.join(', ') : '(none)';
}

function findDeb(pin: KernelPin): string | undefined {
  if (!existsSync(debsDir)) return undefined;
  const version = pin.version.replace(/:/g, '%3a');
  const name = readdirSync(debsDir).find((f) => f === `${pin.package}_${version}_amd64.deb`);
  return name === undefined ? undefined : join(debsDir, name);
}

async function download(pin: KernelPin): Promise<string> {
  const have = findDeb(pin);
  if (have !== undefined) return have;
  await aptUpdate();
  mkdirSync(debsDir, { recursive: true });
  const r = await execa('apt-get', [...aptOptions(), '-q', 'download', `${pin.package}=${pin.version}`], { cwd: debsDir, reject: false, all: true });
  const deb = findDeb(pin);
  if (r.exitCode !== 0 || deb === undefined) {
    throw new Error(
      `kernel ${pin.name}: ${pin.package}=${pin.version} (${pin.suite}) cannot be downloaded from Debian's archive ` +
        `(gone, or replaced by a security update?). Newest packages of that series found: ${await candidates(pin)}. ` +
        `Update the pin in scripts/kernels/pins.ts.\napt-get said:\n${r.all}`,
    );
  }
  return deb;
}

let queue: Promise<unknown> = Promise.resolve();

/**
 * Download (if needed) and unpack one pinned kernel. One at a time: the guests of
 * a matrix start side by side, and apt's private lists and the unpack dirs are
 * shared, within this process (a queue) and with other test runs (a lock file).
 */
export function ensureKernel(pin: KernelPin): Promise<UnpackedKernel> {
  const next = queue.then(async () => {
    mkdirSync(kernelsBuildDir, { recursive: true });
    const release = await acquireLock(join(kernelsBuildDir, 'fetch.lock'), 600_000);
    try {
      return await ensureKernelNow(pin);
    } finally {
      release();
    }
  });
  queue = next.catch(() => undefined);
  return next;
}

async function ensureKernelNow(pin: KernelPin): Promise<UnpackedKernel> {
  const dir = join(kernelsBuildDir, pin.name);
  const root = join(dir, 'root');
  const marker = join(dir, 'unpacked');
  const want = `${pin.package}=${pin.version}`;
  if (!(existsSync(marker) && readFileSync(marker, 'utf8').trim() === want)) {
    const deb = await download(pin);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const tmp = `${root}.tmp`;
    const r = await execa('dpkg-deb', ['-x', deb, tmp], { reject: false, all: true });
    if (r.exitCode !== 0) throw new Error(`dpkg-deb -x ${deb} failed:\n${r.all}`);
    renameSync(tmp, root);
    writeFileSync(marker, `${want}\n`);
  }
  const boot = readdirSync(join(root, 'boot'));
  const vmlinuz = boot.find((f) => f.startsWith('vmlinuz-'));
  if (vmlinuz === undefined) throw new Error(`${want}: no boot/vmlinuz-* in the package`);
  const release = vmlinuz.slice('vmlinuz-'.length);
  return { pin, root, vmlinuz: join(root, 'boot', vmlinuz), release, modulesDir: join(root, 'lib', 'modules', release, 'kernel') };
}

async function main(): Promise<void> {
  const names = process.argv.slice(2);
  const pins = names.length > 0 ? names.map(pinByName) : KERNEL_PINS;
  for (const pin of pins) {
    const t0 = Date.now();
    const k = await ensureKernel(pin);
    console.log(`${pin.name}: ${pin.package}=${pin.version} -> ${k.vmlinuz} (${k.release}, ${Date.now() - t0} ms)`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((err: unknown) => {
    console.error(`fetch: ${(err as Error).message}`);
    process.exit(1);
  });
}
