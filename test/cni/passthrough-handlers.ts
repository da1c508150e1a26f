// Test handlers that change nothing: ADD prints prevResult as it came (or an empty result
// when the plugin is first in its chain), the other commands succeed. The plugin's
// real handlers replace these.
import type { CniHandlers } from '../../src/cni/skel.js';
import { emptyResult } from '../../src/cni/result.js';

export const passThroughHandlers: CniHandlers = {
  add: (req) => Promise.resolve(req.prevResult ?? emptyResult()),
  del: () => Promise.resolve(),
  check: () => Promise.resolve(),
  gc: () => Promise.resolve(),
  status: () => Promise.resolve(),
};
