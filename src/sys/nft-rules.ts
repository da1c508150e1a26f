// The nat table of iptables-nft (nf_tables tables "nat" of family ip and ip6,
// as iptables-nft and istio-cni's iptables write them), read in-process over
// nfnetlink: a dump of the chains and the rules, read-only. A jump to a user
// chain (`-j ISTIO_OUTPUT`) is an `immediate` expression whose verdict is
// NFT_JUMP (or NFT_GOTO for `-g`) with the chain's name.
import { NetlinkSocket, parseAttrList, parseAttrs, readStr, type Message } from './netlink.js';
import { natView, type NatRule, type NatTableView } from './nat-view.js';

export const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG = { NEWCHAIN: 3, GETCHAIN: 4, NEWRULE: 6, GETRULE: 7 } as const;
export const NFPROTO = { ipv4: 2, ipv6: 10 } as const;
const NFTA_CHAIN = { TABLE: 1, NAME: 3 } as const;
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

const msgType = (m: number): number => (NFNL_SUBSYS_NFTABLES << 8) | m;

/** The chain an expression list jumps or goes to (its `immediate` verdict), if any. */
function jumpOf(expressions: Uint8Array | undefined): string | undefined {
  if (!expressions) return undefined;
  for (const elem of parseAttrList(expressions)) {
    if (elem.type !== NFTA_LIST_ELEM) continue;
    const expr = parseAttrs(elem.data);
    if (readStr(expr.get(NFTA_EXPR.NAME)) !== 'immediate') continue;
    const data = parseAttrs(expr.get(NFTA_EXPR.DATA) ?? new Uint8Array()).get(NFTA_IMMEDIATE_DATA);
    const verdict = parseAttrs(data ?? new Uint8Array()).get(NFTA_DATA_VERDICT);
    if (!verdict) continue;
    const v = parseAttrs(verdict);
    const code = v.get(NFTA_VERDICT.CODE);
    if (!code || code.length < 4) continue;
    const c = new DataView(code.buffer, code.byteOffset, 4).getInt32(0, false);
    if (c === NFT_JUMP || c === NFT_GOTO) return readStr(v.get(NFTA_VERDICT.CHAIN));
  }
  return undefined;
}

/** The nat table's view from a chain dump and a rule dump of one family (messages of other tables are left out). */
export function natViewFromNft(chainMsgs: readonly Message[], ruleMsgs: readonly Message[], table = 'nat'): NatTableView {
  const chains: string[] = [];
  for (const m of chainMsgs) {
    if (m.type !== msgType(NFT_MSG.NEWCHAIN)) continue;
    const a = parseAttrs(m.body, NFGENMSG);
    const name = readStr(a.get(NFTA_CHAIN.NAME));
    if (readStr(a.get(NFTA_CHAIN.TABLE)) === table && name) chains.push(name);
  }
  const rules: NatRule[] = [];
  for (const m of ruleMsgs) {
    if (m.type !== msgType(NFT_MSG.NEWRULE)) continue;
    const a = parseAttrs(m.body, NFGENMSG);
    const chain = readStr(a.get(NFTA_RULE.CHAIN));
    if (readStr(a.get(NFTA_RULE.TABLE)) !== table || !chain) continue;
    rules.push({ chain, jumpTo: jumpOf(a.get(NFTA_RULE.EXPRESSIONS)) });
  }
  return natView(chains, rules);
}

/**
 * The nat table of `family` through a NETLINK_NETFILTER socket (opened in the
 * netns to read). undefined when that family has no nat table there.
 */
export function readNftNat(sock: NetlinkSocket, family: number): NatTableView | undefined {
  const header = new Uint8Array([family, 0, 0, 0]);
  const chains = sock.dump(msgType(NFT_MSG.GETCHAIN), header, [], 'NFT_MSG_GETCHAIN');
  const view = natViewFromNft(chains, []);
  if (view.chains.length === 0) return undefined;
  const rules = sock.dump(msgType(NFT_MSG.GETRULE), header, [], 'NFT_MSG_GETRULE');
  return natViewFromNft(chains, rules);
}
