// The per-pod part of the datapath: the cross-node inbound programs
// (ml_tc_ingress / ml_tc_egress, bpf/lib/inbound.h) attached with tc clsact to
// the pod's interface inside its netns. The programs are the ones the
// installer pinned in <pinDir>/progs, shared by every pod of the node.
import { existsSync } from 'node:fs';
import { attachTc, detachTc, listFilters, TC_PREF, type TcAttachResult, type TcFilter } from '../sys/tc.js';
import { pinPaths, TC_PROGRAMS } from './names.js';

export interface PodInterface {
  /** The pod's netns path (CNI_NETNS). */
  netnsPath: string;
  /** Its interface (CNI_IFNAME). */
  ifname: string;
}

/** true when the node's pins hold the tc programs (an older installer's do not). */
export function inboundProgramsPinned(pinDir: string): boolean {
  const p = pinPaths(pinDir);
  return TC_PROGRAMS.every((t) => existsSync(p.prog(t.name)));
}

export async function attachInbound(pinDir: string, pod: PodInterface): Promise<TcAttachResult> {
  const p = pinPaths(pinDir);
  const programs = { ingress: '', egress: '' };
  for (const t of TC_PROGRAMS) programs[t.direction] = p.prog(t.name);
  return attachTc({ netnsPath: pod.netnsPath, ifname: pod.ifname, programs });
}

/** Remove what attachInbound attached; the clsact qdisc only when `addedClsact`. Missing pieces are fine. */
export async function detachInbound(pod: PodInterface, addedClsact: boolean): Promise<string[]> {
  return detachTc({ netnsPath: pod.netnsPath, ifname: pod.ifname, removeClsact: addedClsact });
}

/** meshlane's filters on the pod interface, both hooks. */
export async function inboundFilters(pod: PodInterface): Promise<TcFilter[]> {
  const all = [...(await listFilters(pod.netnsPath, pod.ifname, 'ingress')), ...(await listFilters(pod.netnsPath, pod.ifname, 'egress'))];
  return all.filter((f) => f.pref === TC_PREF);
}
