// The nat table of legacy iptables (x_tables), read in-process and read-only:
// IPT_SO_GET_INFO then IPT_SO_GET_ENTRIES on a raw socket in the netns (what
// iptables-legacy-save does), and the table blob parsed here. Asked only when
// the netns already has a legacy nat table (/proc/net/ip{,6}_tables_names):
// asking for a table that does not exist makes the kernel create it there.
//
// The blob: struct ipt_entry / ip6t_entry one after the other, each followed by
// its matches and its target (struct xt_entry_target: target_size, name[29],
// revision, then the target's data). A user chain starts with an ERROR target
// that carries the chain's name; a jump is the standard target ("") whose
// verdict is the byte offset of the chain's first rule (negative verdicts are
// ACCEPT, DROP, RETURN...). The built-in chains start at hook_entry[hook].
import { readFileSync } from 'node:fs';
import { native } from './native.js';
import { SyscallError } from './syscall-error.js';
import { natView, type NatRule, type NatTableView } from './nat-view.js';

/** Layout per family (<linux/netfilter_ipv4/ip_tables.h>, <linux/netfilter_ipv6/ip6_tables.h>, x86-64 and every 64-bit ABI). */
export const XT_FAMILIES = {
  ipv4: { af: 2, level: 0 /* IPPROTO_IP */, entrySize: 112, targetOffsetAt: 88, names: 'ip_tables_names', label: 'iptables-legacy', sockopt: 'IPT' },
  ipv6: { af: 10, level: 41 /* IPPROTO_IPV6 */, entrySize: 168, targetOffsetAt: 140, names: 'ip6_tables_names', label: 'ip6tables-legacy', sockopt: 'IP6T' },
} as const;
export type XtFamily = (typeof XT_FAMILIES)[keyof typeof XT_FAMILIES];

/** Bound on a legacy table read from a netns (its owner writes it). */
export const MAX_TABLE_BYTES = 16 * 1024 * 1024;
const SO_GET_INFO = 64;
const SO_GET_ENTRIES = 65;
/** struct ipt_getinfo: name[32], valid_hooks, hook_entry[5], underflow[5], num_entries, size. */
const GETINFO_SIZE = 84;
const VALID_HOOKS_AT = 32;
const HOOK_ENTRY_AT = 36;
/** hook_entry of a hook the table does not have (the kernel leaves it 0, which is also PREROUTING's start). */
export const NO_HOOK = 0xffffffff;
const SIZE_AT = 80;
/** struct ipt_get_entries: name[32], size, then the entries (8-aligned). */
const GET_ENTRIES_HEADER = 40;
/** xt_entry_target: u16 target_size, char name[29], u8 revision; the target's data after it. */
const TARGET_NAME_AT = 2;
const TARGET_DATA_AT = 32;
const HOOK_NAMES = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'] as const;

const cstr = (b: Uint8Array, at: number, max: number): string => {
  const s = b.subarray(at, Math.min(b.length, at + max));
  const end = s.indexOf(0);
  return Buffer.from(end < 0 ? s : s.subarray(0, end)).toString('latin1');
};

/**
 * The view of a table blob. `hookEntry[h]` is where built-in chain h starts
 * (NO_HOOK for a hook the table does not have). Throws on a blob whose
 * offsets do not add up.
 */
export function natViewFromXtables(blob: Uint8Array, hookEntry: readonly number[], fam: XtFamily): NatTableView {
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const starts = new Map<number, string>();
  hookEntry.forEach((off, h) => {
    const name = HOOK_NAMES[h];
    if (name && off < blob.length) starts.set(off, name);
  });
  // Pass 1: every entry's offset, and where each user chain starts (the entry after its ERROR head).
  interface Entry {
    at: number;
    target: string;
    verdict: number | undefined;
    error: string | undefined;
  }
  const entries: Entry[] = [];
  for (let at = 0; at < blob.length; ) {
    if (at + fam.entrySize > blob.length) throw new Error(`x_tables blob: entry at ${at} runs past the table (${blob.length} bytes)`);
    const targetOffset = view.getUint16(at + fam.targetOffsetAt, true);
    const next = view.getUint16(at + fam.targetOffsetAt + 2, true);
    if (next < fam.entrySize || targetOffset < fam.entrySize || targetOffset + TARGET_DATA_AT > next || at + next > blob.length) {
      throw new Error(`x_tables blob: entry at ${at} has target_offset ${targetOffset} and next_offset ${next}`);
    }
    const t = at + targetOffset;
    const target = cstr(blob, t + TARGET_NAME_AT, 29);
    const hasData = targetOffset + TARGET_DATA_AT + 4 <= next;
    const verdict = target === '' && hasData ? view.getInt32(t + TARGET_DATA_AT, true) : undefined;
    const error = target === 'ERROR' ? cstr(blob, t + TARGET_DATA_AT, Math.min(32, next - targetOffset - TARGET_DATA_AT)) : undefined;
    entries.push({ at, target, verdict, error });
    if (error !== undefined && error !== 'ERROR') starts.set(at + next, error);
    at += next;
  }
  // Pass 2: each rule with its chain (the last start at or before it); user chains' heads and the closing ERROR are not rules.
  const chains: string[] = [];
  const rules: NatRule[] = [];
  let chain: string | undefined;
  for (const [i, e] of entries.entries()) {
    const started = starts.get(e.at);
    if (started !== undefined) {
      chain = started;
      chains.push(started);
    }
    if (e.error !== undefined) {
      chain = undefined;
      continue;
    }
    if (chain === undefined) continue;
    // A user chain's last entry is its RETURN policy (libiptc appends it): not a rule.
    const nextEntry = entries[i + 1];
    const closesUserChain = !HOOK_NAMES.includes(chain as (typeof HOOK_NAMES)[number]) && (nextEntry === undefined || nextEntry.error !== undefined);
    if (closesUserChain) continue;
    const hook = chain === 'OUTPUT' ? 'output' : chain === 'PREROUTING' ? 'prerouting' : undefined;
    rules.push({ chain, hook, jumpTo: e.verdict !== undefined && e.verdict >= 0 ? starts.get(e.verdict) : undefined });
  }
  return natView(chains, rules);
}

/**
 * The legacy nat table of `fam` in the calling thread's netns (call it inside
 * netns.inNetns). undefined when the netns has no legacy nat table.
 */
export function readLegacyNat(fam: XtFamily, target: string): NatTableView | undefined {
  let names: string;
  try {
    names = readFileSync(`/proc/thread-self/net/${fam.names}`, 'utf8');
  } catch (err) {
    // No such file: the legacy module is not loaded, so no netns has a legacy table.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (!names.split('\n').includes('nat')) return undefined;
  const n = native();
  for (let attempt = 0; ; attempt++) {
    const info = new Uint8Array(GETINFO_SIZE);
    Buffer.from(info.buffer).write('nat', 0, 'latin1');
    const r = n.rawGetsockopt(fam.af, fam.level, SO_GET_INFO, info);
    if (r < 0) throw new SyscallError(`getsockopt(${fam.sockopt}_SO_GET_INFO)`, `${target} nat`, -r);
    const iv = new DataView(info.buffer);
    const validHooks = iv.getUint32(VALID_HOOKS_AT, true);
    const hookEntry = Array.from({ length: 5 }, (_, i) => (validHooks & (1 << i) ? iv.getUint32(HOOK_ENTRY_AT + 4 * i, true) : NO_HOOK));
    const size = iv.getUint32(SIZE_AT, true);
    if (size > MAX_TABLE_BYTES) throw new Error(`the legacy nat table of ${target} is ${size} bytes, more than the ${MAX_TABLE_BYTES} read (Istio's is a few KiB)`);
    const buf = new Uint8Array(GET_ENTRIES_HEADER + size);
    Buffer.from(buf.buffer).write('nat', 0, 'latin1');
    new DataView(buf.buffer).setUint32(32, size, true);
    const e = n.rawGetsockopt(fam.af, fam.level, SO_GET_ENTRIES, buf);
    // EAGAIN: the table changed size between the two calls (a restore under way); ask again.
    if (e === -11 && attempt < 3) continue;
    if (e < 0) throw new SyscallError(`getsockopt(${fam.sockopt}_SO_GET_ENTRIES)`, `${target} nat`, -e);
    return natViewFromXtables(buf.subarray(GET_ENTRIES_HEADER), hookEntry, fam);
  }
}
