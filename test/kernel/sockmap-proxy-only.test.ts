// `proxy-only` never puts an application socket into the sockhash. Two
// sidecar pods registered through the CNI chain (the built plugin's ADD, with
// the annotations of an injected native-sidecar pod); the proxies run as uid
// 1337 in their istio-proxy containers, the apps as uid 1000. An app in pod a
// holds connections to the server in pod b (IPv4 and IPv6) open through both
// proxies; while they are open the test walks ml_sock_pairs and finds each
// key's socket, with its owner's uid, in the pods' /proc/net/tcp{,6}: every
// entry must be a socket of uid 1337. The same walk with sockmap `on` finds
// the apps' sockets there, so the check can fail.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { fromMapped16 } from '../../src/bpf/addr.js';
import { SET_F, tuple } from '../../src/bpf/layout.js';
import { pinPaths } from '../../src/bpf/names.js';
import { writeSettings } from '../../src/bpf/registry.js';
import { BpfMap } from '../../src/sys/bpf.js';
import { execPlugin, type Conflist, type Json } from '../../testing/sandbox/cni-chain.js';
import { meshlaneEntry, primaryResultOf, sandboxPodThroughChain } from '../../testing/sandbox/chain-pod.js';
import type { Pod } from '../../testing/sandbox/node.js';
import { APP, PROXY, datapathNode, install, sockPairs, startInboundProxy, startProxy, startServer, until } from '../helpers/datapath.js';
import { distExe, requireBuiltExe, upstreamFixtures } from '../helpers/paths.js';
import { requireRoot } from '../helpers/root.js';

requireRoot('the proxy-only sockhash test');
requireBuiltExe();

const { node, loc, mlpeer, mlproxy } = await datapathNode(t, 'mlkpo', 158);
await install(loc);
const a = await node.addPod({ name: 'client' });
const b = await node.addPod({ name: 'server' });

const stateDir = join(node.stateDir, 'plugin-state');
const sidecar = JSON.parse(readFileSync(join(upstreamFixtures, 'pods', 'istio-sidecar-cni-native.json'), 'utf8')) as { metadata: { annotations: Record<string, string> } };
const entry = meshlaneEntry(node, { stateDir });
const list: Conflist = { cniVersion: '1.0.0', name: 'meshlane-proxy-only-test', plugins: [entry] };
const added: Array<{ rt: Parameters<typeof execPlugin>[3]; prev: Json }> = [];
t.teardown(async () => {
  for (const x of added) await execPlugin('DEL', list, entry, x.rt, x.prev).catch(() => undefined);
});
for (const [i, pod] of [a, b].entries()) {
  const c = await sandboxPodThroughChain(node, list, [entry], pod, { annotations: sidecar.metadata.annotations }, { binDirs: [join(distExe, '..')], containerId: `proxyonly${i}${'0'.repeat(20)}` });
  added.push({ rt: c.rt, prev: primaryResultOf(pod) as Json });
}

await startProxy(a, mlproxy);
await startInboundProxy(b, mlproxy);
await startServer(b, mlpeer, 8080);

// An app that opens one connection per address, checks an echo on each, says
// "ready" and keeps them open until it is killed (or 30 s).
const HOLD = `import socket, sys, time
conns = []
for dst in sys.argv[1:]:
    fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(10); s.connect((dst, 8080))
    s.sendall(b'z' * 100); got = b''
    while len(got) < 100:
        d = s.recv(100 - len(got))
        if not d: raise EOFError('early EOF')
        got += d
    conns.append(s)
print('ready', flush=True)
time.sleep(30)
`;

interface Sock {
  pod: string;
  uid: number;
}

/** /proc/net/tcp{,6} address "0100007F:1F90" (IPv4, host-order word) or 32 hex digits (4 host-order words). */
function procAddr(hex: string): string {
  const [ip = '', port = '0'] = hex.split(':');
  const words = ip.match(/.{8}/g) ?? [];
  const bytes = new Uint8Array(words.length * 4);
  words.forEach((w, i) => new DataView(bytes.buffer).setUint32(i * 4, parseInt(w, 16), true));
  const addr = bytes.length === 4 ? Array.from(bytes).join('.') : fromMapped16(bytes);
  return `${addr}|${parseInt(port, 16)}`;
}

/** Every established TCP socket of the pods, by "local|port>remote|port", with its owner's uid. */
async function podSockets(pods: readonly Pod[]): Promise<Map<string, Sock>> {
  const out = new Map<string, Sock>();
  for (const pod of pods) {
    for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
      const r = await pod.run('cat', [file]);
      for (const line of r.stdout.split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f.length < 8 || f[3] !== '01') continue; // TCP_ESTABLISHED
        out.set(`${procAddr(f[1] ?? '')}>${procAddr(f[2] ?? '')}`, { pod: pod.name, uid: Number(f[7]) });
      }
    }
  }
  return out;
}

/** The sockhash's keys as "local|port>remote|port" (a key is its socket's own ends). */
function sockhashKeys(): string[] {
  const m = BpfMap.open(pinPaths(node.pinDir).map('ml_sock_pairs'));
  try {
    return m.keys().map((k) => {
      const tu = tuple.decode(k);
      return `${fromMapped16(tu.saddr)}|${tu.sport}>${fromMapped16(tu.daddr)}|${tu.dport}`;
    });
  } finally {
    m.close();
  }
}

async function setMode(flags: number): Promise<void> {
  await writeSettings(node.pinDir, { proxy_uid: 0, proxy_gid: 0, outbound_port: 0, inbound_port: 0, dns_port: 0, flags });
}

const modes = [
  { mode: 'proxy-only', flags: SET_F.SOCKMAP_REDIRECT | SET_F.SOCKMAP_PROXY_ONLY },
  { mode: 'on (the control: the check finds app sockets)', flags: SET_F.SOCKMAP_REDIRECT },
] as const;

for (const { mode, flags } of modes) {
  t.test(`${mode}: whose sockets are in ml_sock_pairs while connections are open`, async (t) => {
    await setMode(flags);
    t.equal(await until(() => sockPairs(node), (n) => n === 0, 5000), 0, 'ml_sock_pairs empty before');
    const app = await a.spawn('python3', ['-c', HOLD, b.ipv4, b.ipv6], APP);
    t.teardown(() => app.kill().then(() => undefined));
    await app.waitForLine((l) => l.trim() === 'ready', { timeoutMs: 15000 });
    const keys = sockhashKeys();
    const socks = await podSockets([a, b]);
    const owners = keys.map((k) => ({ key: k, sock: socks.get(k) }));
    t.comment(`${keys.length} entries: ${owners.map((o) => `${o.key} uid ${o.sock?.uid ?? '?'} in ${o.sock?.pod ?? '?'}`).join('; ')}`);
    const appSocks = [...socks.values()].filter((s) => s.uid === APP.uid).length;
    t.ok(appSocks >= 4, `the apps hold established sockets (${appSocks}: client ends in a, server ends in b)`);
    t.same(owners.filter((o) => !o.sock).map((o) => o.key), [], 'every sockhash entry is an established socket of the pods');
    const byApp = owners.filter((o) => o.sock?.uid === APP.uid).length;
    if (flags & SET_F.SOCKMAP_PROXY_ONLY) {
      t.ok(keys.length >= 4, `both ends of each proxy <-> proxy connection joined (${keys.length})`);
      t.same(owners.filter((o) => o.sock?.uid !== PROXY.uid).map((o) => `${o.key} uid ${String(o.sock?.uid)}`), [], 'every entry is a socket of the proxy (uid 1337)');
      t.equal(byApp, 0, 'no application socket in the sockhash');
    } else {
      t.ok(byApp >= 2, `with sockmap on, application sockets are in the sockhash (${byApp}): the check sees them`);
    }
    await app.kill();
    t.equal(await until(() => sockPairs(node), (n) => n === 0, 5000), 0, 'nothing left once the connections closed');
  });
}
