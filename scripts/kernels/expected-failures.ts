// The test files that fail today on a kernel of the matrix, and why: the one
// list of expected failures (scripts/kernels/guest-tests.ts). A listed file must
// still fail there, with the listed output; when a fix makes it pass, the run
// fails ("UNEXPECTED PASS") until its entry is removed here. Every kernel not
// listed must pass every test.
import type { ExpectedFailure } from './guest-table.js';

/** The datapath does not load on 5.10 yet: every test that installs it stops there. */
const DATAPATH_DOES_NOT_LOAD: ExpectedFailure = {
  reason:
    "the datapath does not load on 5.10: the verifier rejects ml_sockops (unknown func bpf_get_netns_cookie#122: the helper reached sock_ops, sockopt and sk_msg programs in 5.15), and bpftool 7.1's 'cgroup show' fails there",
  output: /the kernel's verifier rejected a meshlane program/,
};

export const EXPECTED_FAILURES: Readonly<Record<string, Readonly<Record<string, ExpectedFailure>>>> = {
  '5.10': {
    loader: DATAPATH_DOES_NOT_LOAD,
    'datapath-outbound': DATAPATH_DOES_NOT_LOAD,
    'datapath-getsockopt': DATAPATH_DOES_NOT_LOAD,
    'datapath-inbound': DATAPATH_DOES_NOT_LOAD,
    'datapath-crossnode': DATAPATH_DOES_NOT_LOAD,
    'datapath-dns': DATAPATH_DOES_NOT_LOAD,
    'datapath-sockmap': DATAPATH_DOES_NOT_LOAD,
    'datapath-untouched': DATAPATH_DOES_NOT_LOAD,
  },
};
