// A failed syscall of ours, with what a user needs to act on it: the operation
// (BPF_MAP_UPDATE_ELEM, RTM_NEWTFILTER, setns ...), what it was on (a map, a pin,
// an interface, a netns) and errno by name (ENOENT, EPERM, E2BIG ...).
import { getSystemErrorMap } from 'node:util';

let names: Map<number, [string, string]> | undefined;

/** The kernel's own errnos (include/linux/errno.h) that bpf(2) returns and libc does not name. */
const KERNEL_ONLY: ReadonlyMap<number, [string, string]> = new Map([[524, ['ENOTSUPP', 'operation not supported by this object (kernel-internal errno)']]]);

/** errno's name and text: 7 -> ['E2BIG', 'argument list too long']. */
export function errnoName(errno: number): { name: string; text: string } {
  names ??= getSystemErrorMap();
  const e = names.get(-Math.abs(errno)) ?? KERNEL_ONLY.get(Math.abs(errno));
  return e ? { name: e[0], text: e[1] } : { name: `errno ${Math.abs(errno)}`, text: 'unknown error' };
}

export class SyscallError extends Error {
  override name = 'SyscallError';
  /** errno's name, as Node names it in err.code. */
  readonly code: string;
  constructor(
    readonly operation: string,
    readonly target: string,
    readonly errno: number,
    detail?: string,
  ) {
    const e = errnoName(errno);
    super(`${operation} on ${target} failed: ${e.name} (${e.text})${detail ? `; ${detail}` : ''}`);
    this.code = e.name;
  }
}

/** `r` when it is a result, a SyscallError when it is -errno. */
export function checked(r: number, operation: string, target: string): number {
  if (r < 0) throw new SyscallError(operation, target, -r);
  return r;
}
