// The test files that fail today on a kernel of the matrix, and why: the one
// list of expected failures (scripts/kernels/guest-tests.ts). A listed file must
// still fail there, with the listed output; when a fix makes it pass, the run
// fails ("UNEXPECTED PASS") until its entry is removed here. Every kernel not
// listed must pass every test.
import type { ExpectedFailure } from './guest-table.js';

/**
 * None today: every test passes on every pinned kernel (5.10 runs the compat
 * build of the datapath). An entry is `kernel -> test name -> { reason, output }`.
 */
export const EXPECTED_FAILURES: Readonly<Record<string, Readonly<Record<string, ExpectedFailure>>>> = {};
