// The kernel matrix, first step (issue 15): boot each pinned Debian kernel
// (scripts/kernels/pins.ts) under qemu, load both builds of the datapath
// (dist/bpf/meshlane.o for 5.15 on, dist/bpf/meshlane-compat.o for older
// kernels; the loader tries the first and falls back to the second on the
// verifier's words below) program by program and the loader's way, attach,
// read back, and compare with what each kernel is known to do. The compat
// object must load and attach everywhere; meshlane.o everywhere but 5.10, where
// exactly the failures listed below (with the verifier's words) are expected.
// Anything else, including a known failure that goes away, fails: update this
// list and docs/kernels.md with the change.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ALL_PROGRAMS, COMPAT_CGROUP_PROGRAMS } from '../../src/bpf/names.js';
import { kernelsBuildDir } from '../../scripts/kernels/pins.js';
import { formatTable, runMatrix, type GuestCheck, type KernelResult } from '../../scripts/kernels/matrix.js';
import { requireRoot } from '../helpers/root.js';

requireRoot('the kernel matrix');

/** kernel -> program -> the verifier's error line expected today, for meshlane.o (the compat object has none). */
const KNOWN_VERIFIER_FAILURES: Record<string, Record<string, string>> = {
  '5.10': {
    // Global functions with pointer arguments are verified on their own from 5.12 on.
    ml_connect4: 'Arg#0 type PTR in ml_inbound_captured() is not supported yet.',
    ml_connect6: 'Arg#0 type PTR in ml_inbound_captured() is not supported yet.',
    ml_tc_ingress: 'Arg#0 type PTR in ml_inbound_captured() is not supported yet.',
    // bpf_get_netns_cookie reached sock_ops and sk_msg (and cgroup sockopt) in 5.15.
    ml_sockops: 'unknown func bpf_get_netns_cookie#122',
    ml_getsockopt: 'unknown func bpf_get_netns_cookie#122',
    ml_redirect: 'unknown func bpf_get_netns_cookie#122',
  },
};

/** kernel -> the loader's loadall error for meshlane.o (it stops at the first failing program). */
const KNOWN_LOADALL_FAILURE: Record<string, string> = {
  '5.10': "libbpf: prog 'ml_connect4': failed to load: -22",
};

/** kernel -> the exit of `bpftool -j cgroup show` with programs attached, when not 0 (bpftool 7.1 sends the 6.0 prog_attach_flags field; 5.10 refuses the query and it prints []). */
const KNOWN_CGROUP_SHOW_EXIT: Record<string, number> = { '5.10': 255 };

const started = Date.now();
const results = await runMatrix();
const table = formatTable(results, ALL_PROGRAMS);
const compatPrograms = [...ALL_PROGRAMS, ...COMPAT_CGROUP_PROGRAMS.map((p) => p.name)];
const compatTable = formatTable(results, compatPrograms, 'compat');
writeFileSync(join(kernelsBuildDir, 'matrix.md'), `dist/bpf/meshlane.o:\n\n${table}\n\ndist/bpf/meshlane-compat.o:\n\n${compatTable}\n`);
t.comment(`kernel x program (also in .build/kernels/matrix.md), ${((Date.now() - started) / 1000).toFixed(1)} s:\nmeshlane.o\n${table}\nmeshlane-compat.o\n${compatTable}`);

function checkObject(t: Test, r: KernelResult, c: GuestCheck | null, programs: readonly string[], known: Record<string, string>, loadallError: string | undefined): void {
  if (c === null) {
    t.fail(`the guest gave no check result (exit ${r.run.exitCode}, timed out: ${r.run.timedOut}); console tail:\n${r.run.console.slice(-3000)}`);
    return;
  }
  t.same(c.programs.map((p) => p.prog).sort(), [...programs].sort(), 'every program of the object was tried');
  t.same([...new Set(c.programs.map((p) => p.btf))], ['ok'], "the kernel accepts the object's BTF");
  for (const p of c.programs) {
    const expected = known[p.prog];
    if (expected === undefined) {
      t.equal(p.load, 'ok', `${p.prog} passes the verifier${p.error ? `: ${p.error}` : ''}`);
      t.equal(p.attach, 'ok', `${p.prog} attaches`);
    } else {
      t.equal(p.load, 'error', `${p.prog} still fails on ${r.kernel} (if it now loads, update KNOWN_VERIFIER_FAILURES and docs/kernels.md)`);
      t.equal(p.error, expected, `${p.prog} fails for the known reason`);
    }
  }
  if (loadallError === undefined) {
    t.equal(c.loaderLoadall.exit, 0, `the loader's bpftool prog loadall succeeds: ${c.loaderLoadall.errors.join('; ')}`);
  } else {
    t.not(c.loaderLoadall.exit, 0, "the loader's loadall fails as known");
    t.equal(c.loaderLoadall.errors[0], loadallError, 'at the known program');
  }
  const showExit = KNOWN_CGROUP_SHOW_EXIT[r.kernel] ?? 0;
  t.equal(c.cgroupShow.exit, showExit, `bpftool -j cgroup show exits ${showExit}`);
  if (showExit === 0) t.equal(c.cgroupShow.listed, programs.length - 3, 'and lists the cgroup programs (all but ml_redirect and the two tc ones)');
}

for (const r of results) {
  t.test(`kernel ${r.kernel} (${r.run.release})`, async (t) => {
    t.equal(r.run.exitCode, 0, 'the check ran to its end in the guest');
    t.test('dist/bpf/meshlane.o', async (t) => checkObject(t, r, r.check, ALL_PROGRAMS, KNOWN_VERIFIER_FAILURES[r.kernel] ?? {}, KNOWN_LOADALL_FAILURE[r.kernel]));
    t.test('dist/bpf/meshlane-compat.o (what the loader falls back to)', async (t) => checkObject(t, r, r.compat, compatPrograms, {}, undefined));
  });
}
