// The kernel floor and the read-back on a real kernel: Debian's 5.10 booted
// under qemu (scripts/kernels/boot.ts) runs scripts/kernels/floor-check.ts with
// the built executable. Checked there:
// - read-back: programs attached with bpftool to a guest cgroup are read back
//   by `meshlane status` in-process (ids equal to bpftool's `prog show`), where
//   `bpftool -j cgroup show` of bpftool 7.1 exits 255 on 5.10;
// - refusal, BPF not permitted: `meshlane install --once` with every capability
//   dropped (what a DaemonSet without privileges gets) refuses with one message
//   naming the kernel release and EPERM; the plugin's STATUS answers 50 with it,
//   a sidecar pod's ADD 11 naming it, a plain pod passes; the long-running
//   installer's /readyz answers 503 with it;
// - refusal, no cgroup v2: the guest's cgroup2 mount taken away.
// Everything happens in the guest's own kernel: nothing is attached on the host.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { runInGuest } from '../../scripts/kernels/boot.js';
import { GUEST_NODE } from '../../scripts/kernels/matrix.js';
import { kernelsBuildDir, pinByName } from '../../scripts/kernels/pins.js';
import { repoRoot, upstreamFixtures } from '../helpers/paths.js';
import { requireRoot } from '../helpers/root.js';

requireRoot('the kernel floor test (qemu guest)');
const exe = join(repoRoot, 'dist', 'meshlane');
if (!existsSync(exe)) throw new Error(`${exe} is missing: run 'npm run build'`);
const KERNEL = '5.10';
const release = pinByName(KERNEL).package.replace(/^linux-image-/, '');

mkdirSync(kernelsBuildDir, { recursive: true });
const tiny = join(kernelsBuildDir, 'floor-tiny.o');
execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-I', '/usr/include/x86_64-linux-gnu', '-c', join(repoRoot, 'scripts', 'kernels', 'floor-tiny.bpf.c'), '-o', tiny]);
const primary = join(upstreamFixtures, 'conflists', 'flannel-10-flannel.conflist');

const started = Date.now();
const run = await runInGuest(KERNEL, {
  command: [GUEST_NODE, '--no-warnings', join(repoRoot, 'scripts', 'kernels', 'floor-check.ts'), exe, tiny, primary],
  timeoutMs: 300_000,
  memory: '2G',
});
const line = run.output.split('\n').find((l) => l.startsWith('@@ML-FLOOR '));
t.comment(`guest ${KERNEL} (${run.release}): ${((Date.now() - started) / 1000).toFixed(1)} s, boot ${run.bootMs} ms, check ${run.runMs} ms`);
if (line === undefined) {
  t.fail(`the guest printed no result (exit ${run.exitCode}, timed out ${run.timedOut}); output tail:\n${run.output.slice(-4000)}`);
} else {
  const r = JSON.parse(line.slice('@@ML-FLOOR '.length)) as Record<string, any>;
  t.equal(r['release'], release, `the guest runs ${release}`);
  t.comment(`without capabilities: ${r['nocaps']?.stdout?.reason}`);
  t.comment(`without cgroup v2: ${r['nocgroup2']?.stdout?.reason}`);

  t.test('read-back in-process where bpftool 7.1 fails', async (t) => {
    const rb = r['readback'];
    t.equal(rb.bpftoolCgroupShow.exit, 255, "bpftool -j cgroup show still fails on 5.10 (if it works now, the trap is gone: fine, but update this test's note)");
    t.equal(rb.status.exit, 3, `meshlane status ran (exit 3: not installed): ${rb.status.stderr}`);
    const progs = rb.status.programs as Array<{ name: string; id?: number; attachedTo: string[] }>;
    for (const name of ['ml_connect4', 'ml_sendmsg4']) {
      const p = progs.find((x) => x.name === name);
      t.equal(p?.id, rb.pinnedIds[name], `${name}: the pinned id read in-process equals bpftool's`);
      t.equal(p?.attachedTo.length, 1, `${name}: read back as attached to the guest cgroup`);
      t.match(p?.attachedTo[0], name === 'ml_connect4' ? /\(cgroup_inet4_connect\)$/ : /\(cgroup_udp4_sendmsg\)$/);
    }
    t.notMatch((rb.status.problems ?? []).join('\n'), /cannot list programs/, 'no read-back problem');
  });

  const refusal = new RegExp(`^meshlane cannot run on this kernel \\(Linux ${release.replace(/[.+]/g, '\\$&')}\\): .*not permitted \\(EPERM: operation not permitted\\).*The installer needs CAP_SYS_ADMIN`);

  t.test('install without capabilities: one refusal naming the kernel and EPERM', async (t) => {
    const n = r['nocaps'];
    t.equal(n.exit, 3, `exit 3 (not ready): ${n.stderr}`);
    t.match(n.stdout, { ready: false, datapath: false, conflist: true, kernelRefused: true });
    t.match(n.stdout.reason, refusal);
    t.notMatch(n.stdout.reason, /\n/, 'one line');
    const errorLines = String(n.stderr).split('\n').filter((l) => l.includes('meshlane cannot run on this kernel'));
    t.equal(errorLines.length, 1, 'logged once');
  });

  t.test('the plugin after that install: STATUS 50, a sidecar ADD 11, a plain pod passes', async (t) => {
    const p = r['plugin'];
    t.ok(p.entryFound, 'the install chained its entry');
    t.not(p.status.exit, 0);
    t.equal(p.status.stdout.code, 50);
    t.equal(p.status.stdout.msg, r['nocaps'].stdout.reason, 'STATUS says what the installer said');
    t.not(p.addSidecar.exit, 0);
    t.equal(p.addSidecar.stdout.code, 11);
    t.equal(p.addSidecar.stdout.msg, `the sidecar pod default/web cannot be intercepted on this node: ${r['nocaps'].stdout.reason}`);
    t.equal(p.addPlain.exit, 0, 'a pod the mesh does not own is not held back');
    t.match(p.addPlain.stdout, { cniVersion: '1.1.0', ips: [{ address: '10.244.0.5/24' }] });
  });

  t.test('/readyz of the long-running installer without capabilities', async (t) => {
    t.equal(r['readyz'].status, 503);
    t.match(String(r['readyz'].body).trim(), refusal);
  });

  t.test('a real install, then again as after a restart (the datapath loaded): ready both times, proxy-only kept', async (t) => {
    const runs = r['real'] as Array<{ exit: number; stdout: { ready?: boolean; datapath?: boolean; sockmap?: { effective?: string } }; stderr: string }>;
    t.equal(runs.length, 2);
    runs.forEach((x, i) => {
      t.equal(x.exit, 0, `install ${i + 1}: exit 0: ${x.stderr}`);
      t.equal(x.stdout.ready, true, `install ${i + 1}: ready`);
      t.equal(x.stdout.datapath, true, `install ${i + 1}: datapath attached`);
      t.equal(x.stdout.sockmap?.effective, 'proxy-only', `install ${i + 1}: the sockmap probe ran and allowed proxy-only`);
    });
    t.equal(r['realUninstall'].exit, 0, `uninstall: ${r['realUninstall'].stderr}`);
  });

  t.test('no cgroup v2 mounted: refused, naming it', async (t) => {
    const n = r['nocgroup2'];
    t.equal(n.umountExit, 0, 'the guest cgroup2 mount was taken away');
    t.equal(n.exit, 3, `exit 3: ${n.stderr}`);
    t.equal(n.stdout.reason, `meshlane cannot run on this kernel (Linux ${release}): no cgroup v2 (no cgroup2 mount in /proc/mounts; mount it, or pass --cgroup-root)`);
  });
}
