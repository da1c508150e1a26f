// tc (clsact) filters on a pod's interface inside its netns: where the
// cross-node inbound programs (ml_tc_ingress / ml_tc_egress) attach.
//
// All of it is rtnetlink in-process (no tc, ip or nsenter): a netlink socket is
// opened inside the pod's netns (src/sys/netns.ts) and the qdisc and filters
// are made through it, as `tc qdisc add dev IF clsact` and
// `tc filter replace dev IF ingress|egress pref 15006 handle 0x1 bpf direct-action`
// make them (`tc filter show` shows the same). The filters use one fixed
// preference and handle, so they are found and removed without guessing, and a
// replace makes a repeated ADD idempotent. The clsact qdisc is added only when
// it is missing, and removed at detach only when we added it and no other
// filter is left on it.
import { closeSync, existsSync } from 'node:fs';
import { objGet, progFdById, progInfo } from './bpf.js';
import { NETLINK_ROUTE, NLM_F, NetlinkSocket, parseAttrs, readStr, readU32, strAttr, u32Attr, type Attr } from './netlink.js';
import { NetnsGoneError, inNetns } from './netns.js';
import { native } from './native.js';
import { SyscallError } from './syscall-error.js';
import { errorMessage } from '../describe-error.js';

/** Preference of meshlane's filters on both hooks (the inbound listener port, for recognition). */
export const TC_PREF = 15006;
const HANDLE = 0x1;

export type TcDirection = 'ingress' | 'egress';

export interface TcAttachSpec {
  /** Path of the pod's netns (CNI_NETNS), e.g. /var/run/netns/x or /proc/<pid>/ns/net. */
  netnsPath: string;
  /** Interface inside the netns (CNI_IFNAME), e.g. eth0. */
  ifname: string;
  /** Pinned program per direction. */
  programs: Record<TcDirection, string>;
}

export interface TcAttachResult {
  /** true when this call created the clsact qdisc (then detach removes it). */
  addedClsact: boolean;
}

export interface TcFilter {
  direction: TcDirection;
  pref: number;
  handle?: string;
  /** The program's name as the kernel reports it (e.g. ml_tc_ingress). */
  progName?: string;
  progId?: number;
}

export class TcError extends Error {
  override name = 'TcError';
}

const RTM = { NEWQDISC: 36, DELQDISC: 37, GETQDISC: 38, NEWTFILTER: 44, DELTFILTER: 45, GETTFILTER: 46 } as const;
const TCA_KIND = 1;
const TCA_OPTIONS = 2;
const TCA_BPF = { FD: 6, NAME: 7, FLAGS: 8, ID: 11 } as const;
const TCA_BPF_FLAG_ACT_DIRECT = 1;
const TC_H_CLSACT = 0xfffffff1;
const CLSACT_HANDLE = 0xffff0000;
const HOOK: Record<TcDirection, number> = { ingress: 0xfffffff2, egress: 0xfffffff3 };
const ETH_P_ALL_BE = 0x0300; // htons(ETH_P_ALL): tc's default protocol "all"
const ENOENT = 2;
const EEXIST = 17;
const ENODEV = 19;
const EINVAL = 22;

const IFNAME_RE = /^[^\s/]{1,15}$/;

function checkSpec(netnsPath: string, ifname: string): void {
  if (!netnsPath.startsWith('/')) throw new TcError(`netns path must be absolute, got '${netnsPath}'`);
  if (!IFNAME_RE.test(ifname)) throw new TcError(`bad interface name '${ifname}'`);
}

/** struct tcmsg: family, ifindex, handle, parent, info. */
function tcmsg(ifindex: number, handle: number, parent: number, info: number): Uint8Array {
  const b = new Uint8Array(20);
  const v = new DataView(b.buffer);
  v.setInt32(4, ifindex, true);
  v.setUint32(8, handle >>> 0, true);
  v.setUint32(12, parent >>> 0, true);
  v.setUint32(16, info >>> 0, true);
  return b;
}

function parseTcmsg(body: Uint8Array): { ifindex: number; handle: number; parent: number; info: number } {
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  return { ifindex: v.getInt32(4, true), handle: v.getUint32(8, true), parent: v.getUint32(12, true), info: v.getUint32(16, true) };
}

/** The pod interface: a netlink socket in its netns and its index there. */
class Link {
  private constructor(
    readonly sock: NetlinkSocket,
    readonly ifindex: number,
    readonly where: string,
  ) {}

  /** undefined when the netns or the interface is gone. */
  static open(netnsPath: string, ifname: string): Link | undefined {
    const where = `${ifname} in ${netnsPath}`;
    const n = native();
    let opened: { fd: number; ifindex: number };
    try {
      opened = inNetns(netnsPath, () => {
        const ifindex = n.ifNameToIndex(ifname);
        if (ifindex === -ENODEV || ifindex === -ENOENT) return { fd: -1, ifindex: 0 };
        if (ifindex < 0) throw new SyscallError('if_nametoindex', where, -ifindex);
        const fd = n.netlinkSocket(NETLINK_ROUTE);
        if (fd < 0) throw new SyscallError('socket(AF_NETLINK)', where, -fd);
        return { fd, ifindex };
      });
    } catch (err) {
      if (err instanceof NetnsGoneError) return undefined;
      // A netns path that is no netns (a bind mount that went away leaves a plain file).
      if (err instanceof SyscallError && err.errno === EINVAL && err.operation.startsWith('setns')) return undefined;
      throw err;
    }
    if (opened.fd < 0) return undefined;
    return new Link(new NetlinkSocket(opened.fd, where), opened.ifindex, where);
  }

  hasClsact(): boolean {
    const msgs = this.sock.dump(RTM.GETQDISC, tcmsg(this.ifindex, 0, 0, 0), [], 'RTM_GETQDISC');
    return msgs.some((m) => parseTcmsg(m.body).ifindex === this.ifindex && readStr(parseAttrs(m.body, 20).get(TCA_KIND)) === 'clsact');
  }

  /** Add the clsact qdisc; false when one is there already. */
  addClsact(): boolean {
    try {
      this.sock.request(RTM.NEWQDISC, NLM_F.CREATE | NLM_F.EXCL, tcmsg(this.ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0), [strAttr(TCA_KIND, 'clsact')], 'RTM_NEWQDISC clsact');
      return true;
    } catch (err) {
      if (err instanceof SyscallError && err.errno === EEXIST) return false;
      throw err;
    }
  }

  delClsact(): void {
    this.sock.request(RTM.DELQDISC, 0, tcmsg(this.ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0), [strAttr(TCA_KIND, 'clsact')], 'RTM_DELQDISC clsact');
  }

  filters(direction: TcDirection): TcFilter[] {
    const msgs = this.sock.dump(RTM.GETTFILTER, tcmsg(this.ifindex, 0, HOOK[direction], 0), [], `RTM_GETTFILTER ${direction}`);
    const out: TcFilter[] = [];
    for (const m of msgs) {
      const t = parseTcmsg(m.body);
      // One message per preference without a handle, one per filter: tc prints the latter.
      if (t.ifindex !== this.ifindex || t.handle === 0) continue;
      const f: TcFilter = { direction, pref: t.info >>> 16, handle: `0x${t.handle.toString(16)}` };
      const attrs = parseAttrs(m.body, 20);
      if (readStr(attrs.get(TCA_KIND)) === 'bpf') {
        const opts = parseAttrs(attrs.get(TCA_OPTIONS) ?? new Uint8Array(0));
        const id = readU32(opts.get(TCA_BPF.ID));
        if (id !== undefined) {
          f.progId = id;
          const name = progName(id);
          if (name !== undefined) f.progName = name;
        }
      }
      out.push(f);
    }
    return out;
  }

  replaceFilter(direction: TcDirection, progFd: number, name: string): void {
    const options: Attr[] = [u32Attr(TCA_BPF.FD, progFd), strAttr(TCA_BPF.NAME, name), u32Attr(TCA_BPF.FLAGS, TCA_BPF_FLAG_ACT_DIRECT)];
    this.sock.request(
      RTM.NEWTFILTER,
      NLM_F.CREATE | NLM_F.REPLACE,
      tcmsg(this.ifindex, HANDLE, HOOK[direction], ((TC_PREF << 16) | ETH_P_ALL_BE) >>> 0),
      [strAttr(TCA_KIND, 'bpf'), { type: TCA_OPTIONS, data: options }],
      `RTM_NEWTFILTER ${direction}`,
    );
  }

  /** Remove every filter at our preference on one hook; false when there was none. */
  delFilters(direction: TcDirection): boolean {
    try {
      this.sock.request(RTM.DELTFILTER, 0, tcmsg(this.ifindex, 0, HOOK[direction], (TC_PREF << 16) >>> 0), [], `RTM_DELTFILTER ${direction}`);
      return true;
    } catch (err) {
      if (err instanceof SyscallError && err.errno === ENOENT) return false;
      throw err;
    }
  }

  close(): void {
    this.sock.close();
  }
}

/** A program's name by its id (undefined when it is gone). */
function progName(id: number): string | undefined {
  const fd = progFdById(id);
  if (fd === undefined) return undefined;
  try {
    return progInfo(fd, `program id ${id}`).name;
  } finally {
    closeSync(fd);
  }
}

function withLink<T>(netnsPath: string, ifname: string, body: (l: Link) => T, gone: () => T): T {
  const link = Link.open(netnsPath, ifname);
  if (!link) return gone();
  try {
    return body(link);
  } finally {
    link.close();
  }
}

export async function hasClsact(netnsPath: string, ifname: string): Promise<boolean> {
  checkSpec(netnsPath, ifname);
  return withLink(netnsPath, ifname, (l) => l.hasClsact(), () => {
    throw new TcError(`no interface ${ifname} in the netns ${netnsPath}`);
  });
}

/** Every filter on one hook of the interface (empty without clsact). */
export async function listFilters(netnsPath: string, ifname: string, direction: TcDirection): Promise<TcFilter[]> {
  checkSpec(netnsPath, ifname);
  return withLink(netnsPath, ifname, (l) => (l.hasClsact() ? l.filters(direction) : []), () => {
    throw new TcError(`no interface ${ifname} in the netns ${netnsPath}`);
  });
}

/**
 * Attach (or replace) meshlane's filters on both hooks. Idempotent. On failure
 * nothing of this call stays attached.
 */
export async function attachTc(spec: TcAttachSpec): Promise<TcAttachResult> {
  checkSpec(spec.netnsPath, spec.ifname);
  for (const d of ['ingress', 'egress'] as const) {
    if (!existsSync(spec.programs[d])) throw new TcError(`program pin ${spec.programs[d]} is missing: is the datapath installed?`);
  }
  if (!existsSync(spec.netnsPath)) throw new TcError(`netns ${spec.netnsPath} does not exist`);
  const fds: Partial<Record<TcDirection, number>> = {};
  let addedClsact = false;
  let link: Link | undefined;
  try {
    for (const d of ['ingress', 'egress'] as const) fds[d] = objGet(spec.programs[d]);
    link = Link.open(spec.netnsPath, spec.ifname);
    if (!link) throw new TcError(`no interface ${spec.ifname} in the netns ${spec.netnsPath}`);
    addedClsact = link.addClsact();
    // Egress first: replies are restored before any connection is steered.
    for (const d of ['egress', 'ingress'] as const) {
      const fd = fds[d] as number;
      link.replaceFilter(d, fd, progInfo(fd, spec.programs[d]).name);
    }
  } catch (err) {
    if (link) {
      const l = link;
      try {
        undoAttach(l, addedClsact);
      } catch {
        // best effort: the error below is the one to report
      }
    }
    throw new TcError(`attaching the inbound programs to ${spec.ifname} in ${spec.netnsPath} failed: ${errorMessage(err)}`, { cause: err });
  } finally {
    link?.close();
    for (const fd of Object.values(fds)) closeSync(fd);
  }
  return { addedClsact };
}

export interface TcDetachSpec {
  netnsPath: string;
  ifname: string;
  /** Remove the clsact qdisc too (when ADD added it), if no other filter is left on it. */
  removeClsact: boolean;
}

function undoAttach(link: Link, removeClsact: boolean): string[] {
  const removed: string[] = [];
  if (!link.hasClsact()) return removed;
  const filters = [...link.filters('ingress'), ...link.filters('egress')];
  const ours = filters.filter((f) => f.pref === TC_PREF);
  const describe = (d: TcDirection): string => `${d}:${ours.filter((f) => f.direction === d).map((f) => f.progName ?? f.handle).join(',')}`;
  const directions = (['ingress', 'egress'] as const).filter((d) => ours.some((f) => f.direction === d));
  if (removeClsact && filters.every((f) => f.pref === TC_PREF)) {
    // We added the qdisc and only our filters are on it: removing it removes them.
    link.delClsact();
    removed.push(...directions.map(describe), 'qdisc:clsact');
    return removed;
  }
  for (const d of directions) {
    if (link.delFilters(d)) removed.push(describe(d));
  }
  return removed;
}

/**
 * Remove meshlane's filters (and the clsact qdisc if asked and empty). A
 * missing netns, interface, qdisc or filter is not an error: it is gone
 * already. Returns what was removed.
 */
export async function detachTc(spec: TcDetachSpec): Promise<string[]> {
  checkSpec(spec.netnsPath, spec.ifname);
  if (!existsSync(spec.netnsPath)) return [];
  return withLink(spec.netnsPath, spec.ifname, (l) => undoAttach(l, spec.removeClsact), () => []);
}
