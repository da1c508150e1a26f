// Are Istio's iptables rules (istio-cni / istio-init: chains ISTIO_OUTPUT and
// ISTIO_INBOUND hooked into the nat table) in a pod's netns? Read in-process
// and read-only, with no tool of the host: the main thread enters the netns
// (netns.inNetns) and reads both iptables backends there, since istio-cni
// uses whichever the node uses:
// - iptables-nft: the nf_tables tables "nat" of family ip and ip6, over
//   nfnetlink (./nft-rules.ts);
// - iptables-legacy: the x_tables nat tables through getsockopt (./xtables.ts),
//   only where the netns has one already.
import { NetnsGoneError, inNetns } from './netns.js';
import { NetlinkSocket } from './netlink.js';
import { NETLINK_NETFILTER, NFPROTO, readNftNat } from './nft-rules.js';
import { XT_FAMILIES, readLegacyNat } from './xtables.js';
import type { NatTableView } from './nat-view.js';
import { errorMessage } from '../describe-error.js';

export type IstioRulesState = 'present' | 'absent' | 'unknown';

export interface IstioRulesProbe {
  state: IstioRulesState;
  /** Istio chains hooked into nat OUTPUT / PREROUTING (ISTIO_OUTPUT, ISTIO_INBOUND), per family and backend. */
  hooked: string[];
  /** One line for people: what was found where, or why it is unknown. */
  detail: string;
}

interface Lister {
  label: string;
  read(): NatTableView | undefined;
}

/**
 * Look at the nat tables of the netns at `netnsPath`. 'present' when an Istio
 * chain is hooked into nat OUTPUT or PREROUTING in any family or backend;
 * 'absent' when at least one backend could be read and none shows that;
 * 'unknown' when the netns is missing or nothing could be read.
 */
export function probeIstioRules(netnsPath: string | undefined): IstioRulesProbe {
  if (!netnsPath) return { state: 'unknown', hooked: [], detail: 'no netns recorded' };
  const hooked: string[] = [];
  const found: string[] = [];
  const failures: string[] = [];
  let listed = 0;
  try {
    inNetns(netnsPath, () => {
      let sock: NetlinkSocket | undefined;
      const nft = (): NetlinkSocket => (sock ??= NetlinkSocket.open(NETLINK_NETFILTER, `the netns ${netnsPath}`));
      const listers: Lister[] = [
        { label: 'iptables-nft', read: () => readNftNat(nft(), NFPROTO.ipv4) },
        { label: 'ip6tables-nft', read: () => readNftNat(nft(), NFPROTO.ipv6) },
        { label: XT_FAMILIES.ipv4.label, read: () => readLegacyNat(XT_FAMILIES.ipv4, `the netns ${netnsPath}`) },
        { label: XT_FAMILIES.ipv6.label, read: () => readLegacyNat(XT_FAMILIES.ipv6, `the netns ${netnsPath}`) },
      ];
      try {
        for (const l of listers) {
          let view: NatTableView | undefined;
          try {
            view = l.read();
          } catch (err) {
            failures.push(`${l.label}: ${errorMessage(err)}`);
            continue;
          }
          listed++;
          if (!view) continue;
          if (view.hooked.length > 0) {
            for (const h of view.hooked) hooked.push(`${h}@${l.label}`);
            found.push(`${view.hooked.join('+')} hooked (${view.istioRules} rules) in ${l.label} nat`);
          } else if (view.chains.some((c) => c.startsWith('ISTIO_'))) {
            found.push(`ISTIO_* chains without a hook in ${l.label} nat`);
          }
        }
      } finally {
        sock?.close();
      }
    });
  } catch (err) {
    if (err instanceof NetnsGoneError) return { state: 'unknown', hooked: [], detail: `netns ${netnsPath} is gone` };
    return { state: 'unknown', hooked: [], detail: `cannot enter the netns ${netnsPath}: ${errorMessage(err)}` };
  }
  if (hooked.length > 0) return { state: 'present', hooked, detail: found.join('; ') };
  if (listed === 0) return { state: 'unknown', hooked: [], detail: `could not read the nat table: ${failures.join('; ')}` };
  return { state: 'absent', hooked: [], detail: found.length ? found.join('; ') : 'no Istio chains in the nat table' };
}
