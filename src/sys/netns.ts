// A synchronous window in another network namespace, on Node's main thread
// (setns moves only the calling thread). Nothing may be awaited inside: other
// code must never run in the pod's netns. What is opened inside (a netlink
// socket) stays in that netns after the switch back. If the switch back fails
// the process aborts: going on in a pod's netns would act on the wrong network.
import { closeSync, openSync } from 'node:fs';
import { native } from './native.js';
import { SyscallError } from './syscall-error.js';

const CLONE_NEWNET = 0x40000000;

export class NetnsGoneError extends Error {
  override name = 'NetnsGoneError';
}

function openNs(path: string, what: string): number {
  try {
    return openSync(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new NetnsGoneError(`${what} ${path} does not exist`);
    throw err;
  }
}

/** Run `body` with the main thread in the netns at `netnsPath` (CNI_NETNS). Throws NetnsGoneError when there is none. */
export function inNetns<T>(netnsPath: string, body: () => T): T {
  const n = native();
  const target = openNs(netnsPath, 'the netns');
  let self: number | undefined;
  try {
    self = openNs('/proc/thread-self/ns/net', 'the own netns');
    const r = n.setns(target, CLONE_NEWNET);
    if (r < 0) throw new SyscallError('setns(CLONE_NEWNET)', netnsPath, -r);
    try {
      const out = body();
      if (out instanceof Promise) throw new TypeError('inNetns: the body must be synchronous');
      return out;
    } finally {
      const back = n.setns(self, CLONE_NEWNET);
      if (back < 0) {
        process.stderr.write(`meshlane: cannot switch back from the netns ${netnsPath}: ${new SyscallError('setns(CLONE_NEWNET)', '/proc/thread-self/ns/net', -back).message}; aborting\n`);
        process.abort();
      }
    }
  } finally {
    closeSync(target);
    if (self !== undefined) closeSync(self);
  }
}
