// Are Istio's iptables rules (istio-cni / istio-init: chains ISTIO_OUTPUT and
// ISTIO_INBOUND hooked into the nat table) in a pod's netns? Read in-process
// and read-only, with no tool of the host: the main thread enters the netns
// (netns.inNetns) and reads every backend Istio may have used there:
// - iptables-nft: the nf_tables tables "nat" of family ip and ip6, over
//   nfnetlink (./nft-rules.ts);
// - Istio's native nftables ruleset (inet istio-proxy-nat: istio-output,
//   istio-inbound), the same way;
// - iptables-legacy: the x_tables nat tables through getsockopt (./xtables.ts),
//   only where the netns has one already.
import { NetnsGoneError, inNetns } from './netns.js';
import { NetlinkSocket } from './netlink.js';
import { NETLINK_NETFILTER, NFPROTO, readNftNat } from './nft-rules.js';
import { XT_FAMILIES, readLegacyNat } from './xtables.js';
import { isIstioChain, type NatTableView } from './nat-view.js';
import { SyscallError } from './syscall-error.js';
import { errorMessage } from '../describe-error.js';

/** errnos that say this kernel has no nf_tables or nfnetlink at all. */
const NO_NFTABLES: ReadonlySet<string> = new Set(['EPROTONOSUPPORT', 'EAFNOSUPPORT', 'EOPNOTSUPP']);

export type IstioRulesState = 'present' | 'absent' | 'unknown';

export interface IstioRulesProbe {
  state: IstioRulesState;
  /** Istio chains hooked into nat OUTPUT / PREROUTING (ISTIO_OUTPUT, ISTIO_INBOUND), per family and backend. */
  hooked: string[];
  /** One line for people: what was found where, or why it is unknown. */
  detail: string;
}

/** One table read: where it is (for the detail line) and what it holds. */
interface Found {
  where: string;
  view: NatTableView;
}

/** One backend in one family; `label` tags its hooked chains (ISTIO_OUTPUT@iptables-nft). */
interface Lister {
  label: string;
  read(): Found[];
}

/** An nf_tables family as a lister. A kernel without nf_tables holds no such ruleset: nothing found, not a failure. */
function nftLister(label: string, family: number, where: (table: string) => string, sock: () => NetlinkSocket): Lister {
  return {
    label,
    read: () => {
      try {
        return readNftNat(sock(), family).map(({ table, view }) => ({ where: where(table), view }));
      } catch (err) {
        if (err instanceof SyscallError && NO_NFTABLES.has(err.code)) return [];
        throw err;
      }
    },
  };
}

/**
 * Look at the nat tables of the netns at `netnsPath`. 'present' when one of
 * Istio's entry chains is hooked into nat output or prerouting in any family or backend;
 * 'absent' when every backend could be read (or is not in the kernel) and none shows that;
 * 'unknown' when the netns is missing or a backend could not be read.
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
        nftLister('iptables-nft', NFPROTO.ipv4, (t) => `iptables-nft ${t}`, nft),
        nftLister('ip6tables-nft', NFPROTO.ipv6, (t) => `ip6tables-nft ${t}`, nft),
        nftLister('nftables', NFPROTO.inet, (t) => `nftables inet ${t}`, nft),
        ...[XT_FAMILIES.ipv4, XT_FAMILIES.ipv6].map((fam) => ({
          label: fam.label,
          read: (): Found[] => {
            const view = readLegacyNat(fam, `the netns ${netnsPath}`);
            return view ? [{ where: `${fam.label} nat`, view }] : [];
          },
        })),
      ];
      try {
        for (const l of listers) {
          let tables: Found[];
          try {
            tables = l.read();
          } catch (err) {
            failures.push(`${l.label}: ${errorMessage(err)}`);
            continue;
          }
          listed++;
          for (const { where, view } of tables) {
            if (view.hooked.length > 0) {
              for (const h of view.hooked) hooked.push(`${h}@${l.label}`);
              found.push(`${view.hooked.join('+')} hooked (${view.istioRules} rules) in ${where}`);
            } else if (view.chains.some(isIstioChain)) {
              found.push(`Istio chains without a hook in ${where}`);
            }
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
  // One backend that could not be read may hold the rules: not 'absent' then.
  if (failures.length > 0) return { state: 'unknown', hooked: [], detail: `could not read every nat table: ${failures.join('; ')}${found.length ? `; ${found.join('; ')}` : ''}` };
  if (listed === 0) return { state: 'unknown', hooked: [], detail: 'no backend could be read' };
  return { state: 'absent', hooked: [], detail: found.length ? found.join('; ') : 'no Istio chains in the nat table' };
}
