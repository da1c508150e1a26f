// What the probe for Istio's rules learns from one nat table (one family, one
// backend), whichever way it was read: the chains, which of Istio's entry
// chains the nat hooks jump to, and how many rules Istio's chains hold.
//
// Istio names its chains two ways: ISTIO_OUTPUT / ISTIO_INBOUND with iptables
// (either backend), istio-output / istio-inbound in its native nftables
// ruleset (table inet istio-proxy-nat).

export const ISTIO_NAT_CHAINS = { output: 'ISTIO_OUTPUT', inbound: 'ISTIO_INBOUND' } as const;
/** Istio's entry chain per nat hook, in both spellings. */
const ENTRY_CHAINS: Record<NatHook, readonly string[]> = {
  output: [ISTIO_NAT_CHAINS.output, 'istio-output'],
  prerouting: [ISTIO_NAT_CHAINS.inbound, 'istio-inbound'],
};

export type NatHook = 'output' | 'prerouting';

/** A chain of Istio's (either spelling). */
export const isIstioChain = (name: string): boolean => name.startsWith('ISTIO_') || name.startsWith('istio-');

export interface NatTableView {
  /** The table's chains (built-in/base and user-defined). */
  chains: string[];
  /** Istio's entry chains that the nat OUTPUT / PREROUTING hooks jump to (or go to). */
  hooked: string[];
  /** Number of rules in Istio's chains, without a legacy user chain's closing RETURN. */
  istioRules: number;
}

/** One rule of the table, as far as the probe cares: its chain, the nat hook that chain sits on (if any), the chain it jumps to (if any). */
export interface NatRule {
  chain: string;
  hook: NatHook | undefined;
  jumpTo: string | undefined;
}

/** The view from a table's chains and rules. */
export function natView(chains: readonly string[], rules: readonly NatRule[]): NatTableView {
  const hooked = new Set<string>();
  let istioRules = 0;
  for (const r of rules) {
    if (isIstioChain(r.chain)) istioRules++;
    if (r.hook && r.jumpTo && ENTRY_CHAINS[r.hook].includes(r.jumpTo)) hooked.add(r.jumpTo);
  }
  return { chains: [...new Set(chains)], hooked: [...hooked].sort(), istioRules };
}
