// nf_tables nat rulesets read in-process over nfnetlink, read-only: a dump of
// the chains and the rules of one family. Two writers matter here:
// - iptables-nft (and istio-cni's iptables on an nft node): the tables "nat"
//   of family ip and ip6, base chains OUTPUT and PREROUTING;
// - Istio's native nftables backend: table inet istio-proxy-nat, base chains
//   output and prerouting.
// Which chain is on a nat hook is read from the chain itself (a base chain of
// type nat on the output or prerouting hook), not from its name. A jump to a
// user chain (`-j ISTIO_OUTPUT`, `jump istio-output`) is an `immediate`
// expression whose verdict is NFT_JUMP (NFT_GOTO for `-g`/`goto`) with the
// chain's name.
import { NetlinkSocket, parseAttrList, parseAttrs, readStr, type Message } from './netlink.js';
import { natView, type NatHook, type NatRule, type NatTableView } from './nat-view.js';

export const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG = { NEWTABLE: 0, GETTABLE: 1, NEWCHAIN: 3, GETCHAIN: 4, NEWRULE: 6, GETRULE: 7 } as const;
const NFTA_TABLE = { NAME: 1, FLAGS: 2 } as const;
/** A dormant table's base chains are not on their hooks. */
const NFT_TABLE_F_DORMANT = 0x1;
export const NFPROTO = { inet: 1, ipv4: 2, ipv6: 10 } as const;
const NFTA_CHAIN = { TABLE: 1, NAME: 3, HOOK: 4, TYPE: 7 } as const;
const NFTA_HOOK_HOOKNUM = 1;
/** enum nf_inet_hooks. */
const NF_INET_HOOK: Record<number, NatHook> = { 0: 'prerouting', 3: 'output' };
const NFTA_RULE = { TABLE: 1, CHAIN: 2, EXPRESSIONS: 4 } as const;
const NFTA_LIST_ELEM = 1;
const NFTA_EXPR = { NAME: 1, DATA: 2 } as const;
const NFTA_IMMEDIATE_DATA = 2;
const NFTA_DATA_VERDICT = 2;
const NFTA_VERDICT = { CODE: 1, CHAIN: 2 } as const;
const NFT_JUMP = -3;
const NFT_GOTO = -4;
/** nfgenmsg: family, version (NFNETLINK_V0), res_id (big-endian 0). */
const NFGENMSG = 4;
const EMPTY = new Uint8Array();

const msgType = (m: number): number => (NFNL_SUBSYS_NFTABLES << 8) | m;
const be32 = (b: Uint8Array | undefined): number | undefined => (b && b.length >= 4 ? new DataView(b.buffer, b.byteOffset, 4).getInt32(0, false) : undefined);

/** The chain an expression list jumps or goes to (its `immediate` verdict), if any. */
function jumpOf(expressions: Uint8Array | undefined): string | undefined {
  if (!expressions) return undefined;
  for (const elem of parseAttrList(expressions)) {
    if (elem.type !== NFTA_LIST_ELEM) continue;
    const expr = parseAttrs(elem.data);
    if (readStr(expr.get(NFTA_EXPR.NAME)) !== 'immediate') continue;
    const data = parseAttrs(expr.get(NFTA_EXPR.DATA) ?? EMPTY).get(NFTA_IMMEDIATE_DATA);
    const verdict = parseAttrs(data ?? EMPTY).get(NFTA_DATA_VERDICT);
    if (!verdict) continue;
    const v = parseAttrs(verdict);
    const code = be32(v.get(NFTA_VERDICT.CODE));
    if (code === NFT_JUMP || code === NFT_GOTO) return readStr(v.get(NFTA_VERDICT.CHAIN));
  }
  return undefined;
}

export interface NftNatTable {
  table: string;
  view: NatTableView;
}

/** The dormant tables of a table dump (their chains are not on any hook). */
export function dormantTables(tableMsgs: readonly Message[]): Set<string> {
  const out = new Set<string>();
  for (const m of tableMsgs) {
    if (m.type !== msgType(NFT_MSG.NEWTABLE)) continue;
    const a = parseAttrs(m.body, NFGENMSG);
    const name = readStr(a.get(NFTA_TABLE.NAME));
    const flags = be32(a.get(NFTA_TABLE.FLAGS)) ?? 0;
    if (name && flags & NFT_TABLE_F_DORMANT) out.add(name);
  }
  return out;
}

/**
 * The nat tables of one family's chain and rule dumps: every table with a base
 * chain of type nat, with its view. A dormant table's chains hook nothing.
 * Messages of other types are left out.
 */
export function natTablesFromNft(chainMsgs: readonly Message[], ruleMsgs: readonly Message[], dormant: ReadonlySet<string> = new Set()): NftNatTable[] {
  const chains = new Map<string, string[]>();
  const natHooks = new Map<string, NatHook>(); // "table\0chain" -> hook, for base chains of type nat
  const natTables = new Set<string>();
  for (const m of chainMsgs) {
    if (m.type !== msgType(NFT_MSG.NEWCHAIN)) continue;
    const a = parseAttrs(m.body, NFGENMSG);
    const table = readStr(a.get(NFTA_CHAIN.TABLE));
    const name = readStr(a.get(NFTA_CHAIN.NAME));
    if (!table || !name) continue;
    const inTable = chains.get(table);
    if (inTable) inTable.push(name);
    else chains.set(table, [name]);
    const hook = a.get(NFTA_CHAIN.HOOK);
    if (!hook || readStr(a.get(NFTA_CHAIN.TYPE)) !== 'nat' || dormant.has(table)) continue;
    natTables.add(table);
    const hooknum = be32(parseAttrs(hook).get(NFTA_HOOK_HOOKNUM));
    const natHook = hooknum === undefined ? undefined : NF_INET_HOOK[hooknum];
    if (natHook) natHooks.set(`${table}\0${name}`, natHook);
  }
  const rules = new Map<string, NatRule[]>();
  for (const m of ruleMsgs) {
    if (m.type !== msgType(NFT_MSG.NEWRULE)) continue;
    const a = parseAttrs(m.body, NFGENMSG);
    const table = readStr(a.get(NFTA_RULE.TABLE));
    const chain = readStr(a.get(NFTA_RULE.CHAIN));
    if (!table || !chain || !natTables.has(table)) continue;
    const rule: NatRule = { chain, hook: natHooks.get(`${table}\0${chain}`), jumpTo: jumpOf(a.get(NFTA_RULE.EXPRESSIONS)) };
    const inTable = rules.get(table);
    if (inTable) inTable.push(rule);
    else rules.set(table, [rule]);
  }
  return [...natTables].sort().map((table) => ({ table, view: natView(chains.get(table) ?? [], rules.get(table) ?? []) }));
}

/**
 * Bounds on what is read from one netns: its owner writes it. Istio's rulesets
 * hold tens of chains and rules; a dump beyond these is refused (the probe
 * says 'unknown') instead of holding the main thread.
 */
export const MAX_NFT_CHAINS = 10_000;
export const MAX_NFT_RULES = 100_000;

/**
 * The nat tables of `family` through a NETLINK_NETFILTER socket (opened in the
 * netns to read); empty when that family has none there.
 */
export function readNftNat(sock: NetlinkSocket, family: number): NftNatTable[] {
  const header = new Uint8Array([family, 0, 0, 0]);
  const chains = sock.dump(msgType(NFT_MSG.GETCHAIN), header, [], 'NFT_MSG_GETCHAIN', MAX_NFT_CHAINS);
  if (natTablesFromNft(chains, []).length === 0) return [];
  const dormant = dormantTables(sock.dump(msgType(NFT_MSG.GETTABLE), header, [], 'NFT_MSG_GETTABLE', MAX_NFT_CHAINS));
  const rules = sock.dump(msgType(NFT_MSG.GETRULE), header, [], 'NFT_MSG_GETRULE', MAX_NFT_RULES);
  return natTablesFromNft(chains, rules, dormant);
}
