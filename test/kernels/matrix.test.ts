// The kernel matrix, first step (issue 15): boot each pinned Debian kernel
// (scripts/kernels/pins.ts) under qemu, load dist/bpf/meshlane.o program by
// program and the loader's way, attach, read back, and compare with what each
// kernel is known to do. Every program must load and attach on 6.1 and later;
// on 5.10 exactly the failures listed below (with the verifier's words) are
// allowed. Anything else, including a known failure that goes away, fails:
// update this list and docs/kernels.md with the change.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ALL_PROGRAMS } from '../../src/bpf/names.js';
import { kernelsBuildDir } from '../../scripts/kernels/pins.js';
import { formatTable, runMatrix } from '../../scripts/kernels/matrix.js';
import { requireRoot } from '../helpers/root.js';

requireRoot('the kernel matrix');

/** kernel -> program -> the verifier's error line expected today. */
const KNOWN_VERIFIER_FAILURES: Record<string, Record<string, string>> = {
  '5.10': {
    // bpf_get_netns_cookie reached sock_ops and sk_msg (and cgroup sockopt) in 5.15.
    ml_sockops: 'unknown func bpf_get_netns_cookie#122',
    ml_getsockopt: 'unknown func bpf_get_netns_cookie#122',
    ml_redirect: 'unknown func bpf_get_netns_cookie#122',
  },
};

/**
 * kernel -> the kernel's reason for refusing the object's BTF. libbpf then loads
 * without BTF, so the global functions with pointer arguments (ml_cidr_match,
 * ml_outbound_captured, ml_inbound_captured) are verified as static ones; with
 * BTF accepted, 5.10 refuses them (`Arg#0 type PTR in ...() is not supported
 * yet`, needs 5.12) in ml_connect4/6 and ml_tc_ingress.
 */
const KNOWN_BTF_REJECTED: Record<string, RegExp> = {
  // An empty DATASEC (no variables) is refused before 5.11 or so; the type id and size follow bpf/.
  '5.10': /^rejected: \[\d+\] DATASEC \.rodata size=\d+ vlen=0 vlen == 0$/,
};

/** kernel -> what the loader's own steps do there today, when not ok. */
const KNOWN_LOADER: Record<string, { loadallError: string; cgroupShowExit: number }> = {
  // loadall stops at the first failing program; bpftool 7.1 sends the 6.0
  // prog_attach_flags field, so 5.10 refuses `cgroup show` (exit 255, prints []).
  '5.10': { loadallError: "libbpf: prog 'ml_sockops': failed to load: -22", cgroupShowExit: 255 },
};

const started = Date.now();
const results = await runMatrix();
const table = formatTable(results, ALL_PROGRAMS);
writeFileSync(join(kernelsBuildDir, 'matrix.md'), `${table}\n`);
t.comment(`kernel x program (also in .build/kernels/matrix.md), ${((Date.now() - started) / 1000).toFixed(1)} s:\n${table}`);

for (const r of results) {
  t.test(`kernel ${r.kernel} (${r.run.release})`, async (t) => {
    if (r.check === null) {
      t.fail(`the guest gave no check result (exit ${r.run.exitCode}, timed out: ${r.run.timedOut}); console tail:\n${r.run.console.slice(-3000)}`);
      return;
    }
    t.equal(r.run.exitCode, 0, 'the check ran to its end in the guest');
    const known = KNOWN_VERIFIER_FAILURES[r.kernel] ?? {};
    t.same(
      r.check.programs.map((p) => p.prog).sort(),
      [...ALL_PROGRAMS].sort(),
      'every program of the object was tried',
    );
    const btf = [...new Set(r.check.programs.map((p) => p.btf))];
    const btfKnown = KNOWN_BTF_REJECTED[r.kernel];
    t.equal(btf.length, 1, 'the same BTF outcome for every load');
    if (btfKnown === undefined) t.equal(btf[0], 'ok', "the kernel accepts the object's BTF");
    else t.match(btf[0] ?? '', btfKnown, "the kernel refuses the object's BTF for the known reason (if it now accepts it, expect the Arg#0 PTR errors on 5.10)");
    for (const p of r.check.programs) {
      const expected = known[p.prog];
      if (expected === undefined) {
        t.equal(p.load, 'ok', `${p.prog} passes the verifier${p.error ? `: ${p.error}` : ''}`);
        t.equal(p.attach, 'ok', `${p.prog} attaches`);
      } else {
        t.equal(p.load, 'error', `${p.prog} still fails on ${r.kernel} (if it now loads, update KNOWN_VERIFIER_FAILURES and docs/kernels.md)`);
        t.equal(p.error, expected, `${p.prog} fails for the known reason`);
      }
    }
    const loader = KNOWN_LOADER[r.kernel];
    if (loader === undefined) {
      t.equal(r.check.loaderLoadall.exit, 0, `the loader's bpftool prog loadall succeeds: ${r.check.loaderLoadall.errors.join('; ')}`);
      t.equal(r.check.cgroupShow.exit, 0, 'bpftool -j cgroup show works');
      t.equal(r.check.cgroupShow.listed, 8, 'and lists the 8 cgroup programs');
    } else {
      t.not(r.check.loaderLoadall.exit, 0, "the loader's loadall fails as known");
      t.equal(r.check.loaderLoadall.errors[0], loader.loadallError, 'at the known program');
      t.equal(r.check.cgroupShow.exit, loader.cgroupShowExit, 'bpftool -j cgroup show exits as known');
    }
  });
}
