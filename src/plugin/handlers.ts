// What the plugin does for each CNI command.
//
// This build registers nothing yet: ADD hands the previous plugin's result on
// unchanged, DEL/CHECK/GC/STATUS succeed. Pod registration replaces these.
import { CniError, CniErrorCode } from '../cni/errors.js';
import type { CniHandlers } from '../cni/skel.js';

export const handlers: CniHandlers = {
  async add(req) {
    if (!req.prevResult) {
      throw new CniError(
        CniErrorCode.InvalidNetworkConfig,
        'meshlane is a chained plugin and got no prevResult: list it after the plugin that creates the pod interface',
      );
    }
    req.log.debug('passing prevResult through');
    return req.prevResult;
  },
  async del() {},
  async check() {},
  async gc() {},
  async status() {},
};
