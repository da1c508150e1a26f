// The sockmap bypass (sk_msg redirect between same-node app <-> proxy and
// proxy <-> proxy sockets) on the real kernel, switched off and on with the
// settings flag SOCKMAP_REDIRECT, without reloading. Path: app in A (uid
// 1000) -> A's proxy (15001) -> B's proxy (15006) -> server in B. For both
// settings: data integrity for 1 B, 64 KiB and 4 MB, half-close, a client
// that waits on poll + FIONREAD, a client that reads with splice(), both
// directions (echo, send to a sink, receive from a source), 200 concurrent
// connections, a client with plain blocking recv(); afterwards no socket
// left in ml_sock_pairs, no 4-tuple record left, and the counters show which
// path the bytes took. Three settings: off, on (app and proxy sockets join the
// sockhash), on + PROXY_ONLY (only proxy <-> proxy sockets do). Last, the
// switch flipped under live connections.
import t from 'tap';
import { requireRoot } from '../helpers/root.js';
import { writeSettings } from '../../src/bpf/registry.js';
import { SET_F } from '../../src/bpf/layout.js';
import { probeSockmap } from '../../src/bpf/sockmap-probe.js';
import { sockmapFaults } from '../../src/install/sockmap-safety.js';
import { APP, connectionTrail, counters, datapathNode, delta, describe, hostPort, install, register, scaled, sockPairs, startInboundProxy, startProxy, runWatched, startServer, summary, tcpSnapshot, tupleRecords, until, type Counters, type Hop } from '../helpers/datapath.js';

requireRoot('the datapath sockmap test');
const { node, loc, mlpeer, mlproxy } = await datapathNode(t, 'mlksm', 115);
const a = await node.addPod({ name: 'a' });
const b = await node.addPod({ name: 'b' });
await install(loc);
await register(node, a);
await register(node, b);
const proxyA = await startProxy(a, mlproxy);
const proxyB = await startInboundProxy(b, mlproxy);
const MB4 = 4 * 1024 * 1024;
const SOCKMAP_PROXY_ONLY = SET_F.SOCKMAP_PROXY_ONLY;
// The installer's sockmap probe on this kernel. Where FIONREAD does not count
// redirected bytes (kernels before 929e30f93125, e.g. 6.1 and 5.10), an app
// socket in the sockhash ("on", which the installer then refuses) never sees
// its echo announced: the FIONREAD clients are left out of "on" there, one case
// checks that the probe's finding is what such a client meets, and the switch
// flips below use proxy-only (app sockets stay out of the sockhash).
const probe = probeSockmap();
const faults = sockmapFaults(probe);
if (faults.includes('unsupported')) {
  throw new Error(`the sockmap probe could not run on this kernel with the datapath loaded (step ${probe.failedStep ?? '?'}, errno ${String(probe.errno ?? '?')}): the installer would refuse every sockmap mode here`);
}
const fionreadBlind = faults.includes('fionread-redirected');
t.comment(`sockmap probe on this kernel: ${faults.join(', ') || 'no fault'}`);

async function setFlags(flags: number): Promise<void> {
  await writeSettings(node.pinDir, { proxy_uid: 0, proxy_gid: 0, outbound_port: 0, inbound_port: 0, dns_port: 0, flags });
}

// A client that uses plain blocking sockets (no poll), N connections of each
// of two patterns: request/response of 100 bytes, and send 100 bytes +
// shutdown(SHUT_WR) + read until EOF (half-close). Each socket has a timeout
// (argv[4] s) so that a connection that stalls is reported by its local end,
// which the test follows through the proxies (connectionTrail).
const BLOCKING_CLIENT = `import socket, sys, json, time
dst = (sys.argv[1], int(sys.argv[2])); fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
n = int(sys.argv[3]); limit = float(sys.argv[4]); out = {}; failures = []
for pattern in ('request-response', 'half-close-read-to-eof'):
    ok = 0; errs = {}
    for i in range(n):
        s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(limit); local = None; t0 = time.time()
        try:
            s.connect(dst); a = s.getsockname(); local = ('[%s]:%d' if fam == socket.AF_INET6 else '%s:%d') % (a[0], a[1])
            s.sendall(b'y' * 100); got = b''
            if pattern == 'half-close-read-to-eof':
                s.shutdown(socket.SHUT_WR)
                while True:
                    d = s.recv(65536)
                    if not d: break
                    got += d
            else:
                while len(got) < 100:
                    d = s.recv(100 - len(got))
                    if not d: raise EOFError('early EOF')
                    got += d
            if got != b'y' * 100: raise ValueError('got %d bytes' % len(got))
            ok += 1
        except Exception as e:
            k = '%s: %s' % (type(e).__name__, e)
            errs[k] = errs.get(k, 0) + 1
            if len(failures) < 5: failures.append({'pattern': pattern, 'i': i, 'local': local, 'error': k, 'ms': int((time.time() - t0) * 1000)})
        finally:
            s.close()
    out[pattern] = {'ok': ok, 'errors': errs}
out['failures'] = failures
print(json.dumps(out), flush=True)
`;

/** The path of a connection to the echo server, for a failure message. */
const echoPath: Hop[] = [];
const snapshot = (): Promise<string> => tcpSnapshot([a, b], [15001, 15006, 8080]);
const trails = (locals: readonly unknown[]): string => locals.filter((l): l is string => typeof l === 'string').map((l) => `${l}: ${connectionTrail(echoPath, l)}`).join('\n');

// One long-lived connection, read the FIONREAD way (poll, ioctl(FIONREAD),
// recv exactly that much), in two phases with a pause between them during
// which the test flips the switch. Each phase sends 100 bytes and waits up to
// 3 s for FIONREAD to announce the echo; it reports what a plain recv finds.
const TOGGLE_CLIENT = `import socket, sys, time, fcntl, termios, struct, select, json
dst = (sys.argv[1], int(sys.argv[2])); fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM); s.connect(dst); s.setblocking(False)
def fionread():
    return struct.unpack('i', fcntl.ioctl(s, termios.FIONREAD, b'\\0\\0\\0\\0'))[0]
def phase(n):
    s.send(b'x' * n); end = time.time() + 3; seen = [0]; got = b''
    while time.time() < end and len(got) < n:
        select.select([s], [], [], 0.05)
        avail = fionread(); seen.append(avail)
        if avail > 0: got += s.recv(avail)
    try: extra = s.recv(65536)
    except BlockingIOError: extra = b''
    return {'want': n, 'got_by_fionread': len(got), 'fionread_max': max(seen), 'plain_recv_then': len(extra)}
print(json.dumps({'phase': 1, **phase(100)}), flush=True)
time.sleep(float(sys.argv[3]))
print(json.dumps({'phase': 2, **phase(100)}), flush=True)
`;
const echoServer = await startServer(b, mlpeer, 8080);
echoPath.push({ name: 'proxy A', proc: proxyA }, { name: 'proxy B', proc: proxyB }, { name: 'server', proc: echoServer });
await startServer(b, mlpeer, 8081, ['--mode', 'sink']);
await startServer(b, mlpeer, 8082, ['--mode', 'source', '--bytes', String(MB4)]);

interface Transfer {
  name: string;
  port: number;
  args: string[];
  expectReceived: number;
  timeoutMs: number;
}

const transfers: Transfer[] = [];
for (const bytes of [1, 64 * 1024, MB4]) {
  transfers.push({ name: `echo ${bytes} B`, port: 8080, args: ['--bytes', String(bytes)], expectReceived: bytes, timeoutMs: 15000 });
}
transfers.push(
  { name: 'echo 1 MB, half-close', port: 8080, args: ['--bytes', '1000000', '--half-close'], expectReceived: 1000000, timeoutMs: 15000 },
  { name: 'send 4 MB to a sink, half-close, wait for EOF', port: 8081, args: ['--mode', 'send', '--bytes', String(MB4)], expectReceived: 0, timeoutMs: 15000 },
  { name: 'receive 4 MB from a source', port: 8082, args: ['--mode', 'recv', '--bytes', String(MB4)], expectReceived: MB4, timeoutMs: 15000 },
  { name: 'FIONREAD/poll client, echo 64 KiB', port: 8080, args: ['--bytes', String(64 * 1024), '--read', 'fionread'], expectReceived: 64 * 1024, timeoutMs: 5000 },
  { name: 'FIONREAD/poll client, echo 1 MB, half-close', port: 8080, args: ['--bytes', '1000000', '--read', 'fionread', '--half-close'], expectReceived: 1000000, timeoutMs: 5000 },
  { name: 'FIONREAD/poll client, receive 4 MB', port: 8082, args: ['--mode', 'recv', '--bytes', String(MB4), '--read', 'fionread'], expectReceived: MB4, timeoutMs: 5000 },
  { name: 'splice client, echo 1 MB, half-close', port: 8080, args: ['--bytes', '1000000', '--read', 'splice', '--half-close'], expectReceived: 1000000, timeoutMs: 10000 },
  { name: 'splice client, receive 4 MB', port: 8082, args: ['--mode', 'recv', '--bytes', String(MB4), '--read', 'splice'], expectReceived: MB4, timeoutMs: 10000 },
);

// With app sockets in the sockhash ("on"), this kernel (6.18) gives splice()
// readers EAGAIN until EOF (redirected bytes sit in the psock queue, which TCP
// splice does not read) and blocking recv() readers a spurious EAGAIN now and
// then. Those are kernel limits, measured and written up in docs/datapath.md;
// for that mode the test keeps every other case and leaves those two out, and
// the installer offers the mode only as an explicit, documented opt-in.
const modes = [
  { mode: 'sockmap off', flags: 0, appSockets: false },
  { mode: 'sockmap on', flags: SET_F.SOCKMAP_REDIRECT, appSockets: true },
  { mode: 'sockmap on, proxy-only', flags: SET_F.SOCKMAP_REDIRECT | SOCKMAP_PROXY_ONLY, appSockets: false },
] as const;

// Every case runs over IPv4 and IPv6, in every mode and on every kernel. (IPv6
// once stalled now and then, in every mode: the app's connection went to
// [::1]:15001 from the pod's address, and the kernel lost the ACKs it sends
// from its control socket for such a connection; docs/datapath.md, "IPv6
// outbound listener address". The failure messages follow a connection that
// does not complete through both proxies and show the pods' TCP sockets.)
const FAMILIES: ReadonlyArray<'4' | '6'> = ['4', '6'];

for (const { mode, flags, appSockets } of modes) {
  const on = flags !== 0;
  let start: Counters | undefined;

  t.test(`${mode}: switch set without reloading`, async (t) => {
    await setFlags(flags);
    t.equal(await sockPairs(node), 0, 'ml_sock_pairs empty before');
    start = await counters(node);
  });

  const leftOut = (x: Transfer): boolean => appSockets && (x.args.includes('splice') || (fionreadBlind && x.args.includes('fionread')));
  if (appSockets && fionreadBlind) {
    t.test(`${mode}: the probe's finding holds: FIONREAD does not announce redirected bytes to an app socket`, async (t) => {
      const r = await a.run(mlpeer, ['client', '--connect', hostPort(b.ipv4, 8080), '--bytes', '65536', '--read', 'fionread', '--timeout-ms', '3000'], { ...APP, timeoutMs: 8000 });
      t.not(r.exitCode, 0, `a FIONREAD client does not complete: ${describe(r)}`);
    });
  }
  for (const tr of transfers.filter((x) => !leftOut(x))) {
    for (const f of FAMILIES) {
      t.test(`${mode}: ${tr.name}, IPv${f}`, async (t) => {
        const dst = hostPort(f === '4' ? b.ipv4 : b.ipv6, tr.port);
        const { r, stalled } = await runWatched(a, mlpeer, ['client', '--connect', dst, ...tr.args, '--timeout-ms', String(scaled(tr.timeoutMs))], { ...APP, timeoutMs: scaled(tr.timeoutMs) + 5000 }, scaled(4000), snapshot);
        const s = summary(r);
        const where = r.exitCode !== 0 && tr.port === 8080 ? `\nwhere it stopped: ${trails(Array.isArray(s['failed_local']) ? s['failed_local'] : [])}` : '';
        t.equal(r.exitCode, 0, `${tr.name} to ${dst}: ${describe(r)}${where}\n${stalled}`);
        t.equal(s['received'], tr.expectReceived, 'every byte back, checked against the pattern');
        t.equal(s['peer'], f === '4' ? '127.0.0.1:15001' : `[${a.ipv6}]:15001`, 'through the proxy path');
      });
    }
  }

  t.test(`${mode}: 200 concurrent connections through both proxies`, async (t) => {
    for (const f of FAMILIES) {
      const dst = hostPort(f === '4' ? b.ipv4 : b.ipv6, 8080);
      const { r, stalled } = await runWatched(a, mlpeer, ['client', '--connect', dst, '--bytes', '20000', '--concurrency', '200', '--timeout-ms', String(scaled(20000))], { ...APP, timeoutMs: scaled(20000) + 5000 }, scaled(8000), snapshot);
      const s = summary(r);
      const failedLocal = Array.isArray(s['failed_local']) ? s['failed_local'] : [];
      t.equal(r.exitCode, 0, `IPv${f}: ${describe(r)}${failedLocal.length > 0 ? `\nwhere the first failures stopped:\n${trails(failedLocal)}` : ''}\n${stalled}`);
      t.equal(s['failed'], 0);
      t.equal(s['received'], 200 * 20000);
    }
  });

  if (!appSockets) t.test(`${mode}: a client with plain blocking recv(), 100 + 100 connections`, async (t) => {
    for (const f of FAMILIES) {
      const perSocketS = scaled(10000) / 1000;
      const { r, stalled } = await runWatched(a, 'python3', ['-c', BLOCKING_CLIENT, f === '4' ? b.ipv4 : b.ipv6, '8080', '100', String(perSocketS)], { ...APP, timeoutMs: scaled(60000) }, scaled(8000), snapshot);
      t.equal(r.exitCode, 0, describe(r));
      const out = JSON.parse(r.stdout.trim() || '{}') as Record<string, { ok: number; errors: Record<string, number> }> & { failures?: Array<{ local: string | null }> };
      const where = (out.failures ?? []).length > 0 ? `\nfailures: ${JSON.stringify(out.failures)}\nwhere they stopped:\n${trails((out.failures ?? []).map((x) => x.local))}` : '';
      for (const pattern of ['request-response', 'half-close-read-to-eof']) {
        t.same(out[pattern], { ok: 100, errors: {} }, `IPv${f}, ${pattern}: every connection complete: ${JSON.stringify(out[pattern])}${where}\n${stalled}`);
      }
    }
  });

  t.test(`${mode}: nothing left behind, counters show the path`, async (t) => {
    const left = await until(() => sockPairs(node), (n) => n === 0, 5000);
    t.equal(left, 0, 'no socket left in ml_sock_pairs after every connection closed');
    t.equal(await until(() => tupleRecords(node), (n) => n === 0, 3000), 0, 'no 4-tuple record left');
    const d = delta(start as Counters, await counters(node));
    t.comment(`counters (${mode}): ${JSON.stringify(d)}`);
    if (on) {
      t.ok((d.redirect_ok ?? 0) > 0, `redirect_ok > 0 (${String(d.redirect_ok)})`);
      t.ok((d.sockops_sockhash_added ?? 0) > 0, `sockets joined the sockhash (${String(d.sockops_sockhash_added)})`);
      // Both ends of every redirected connection join: app <-> 15001 (unless
      // proxy-only) and proxy A <-> B's 15006; each has one 4-tuple record.
      const joined = flags & SOCKMAP_PROXY_ONLY ? (d.connect4_redirect_in ?? 0) + (d.connect6_redirect_in ?? 0) : (d.sockops_odst_saved ?? 0);
      t.equal(d.sockops_sockhash_added, 2 * joined, `both sockets of each ${flags & SOCKMAP_PROXY_ONLY ? 'proxy <-> proxy' : 'redirected'} connection joined the sockhash`);
    } else {
      t.equal(d.redirect_ok ?? 0, 0, 'redirect_ok = 0');
      t.equal(d.sockops_sockhash_added ?? 0, 0, 'no socket joined the sockhash');
    }
    t.equal(d.err_sockhash_update ?? 0, 0, 'no sockhash update error');
    t.equal(d.err_odst_tup_update ?? 0, 0);
  });
}

// The switch is read on every message, but a socket that joined the sockhash
// while it was on stays there until it closes.
for (const from of [true, false]) {
  const onFlags = fionreadBlind ? SET_F.SOCKMAP_REDIRECT | SOCKMAP_PROXY_ONLY : SET_F.SOCKMAP_REDIRECT;
  const setOn = (on: boolean): Promise<void> => setFlags(on ? onFlags : 0);
  t.test(`switch flipped ${from ? 'on -> off' : 'off -> on'}${fionreadBlind ? ' (proxy-only)' : ''} under a live connection: a FIONREAD client keeps working`, async (t) => {
    await setOn(from);
    const before = await counters(node);
    const p = await a.spawn('python3', ['-c', TOGGLE_CLIENT, b.ipv4, '8080', '1.0'], APP);
    t.teardown(() => p.kill().then(() => undefined));
    const one = JSON.parse(await p.waitForLine((l) => l.includes('"phase": 1'), { timeoutMs: 6000 })) as Record<string, number>;
    t.equal(one['got_by_fionread'], 100, `before the flip: ${JSON.stringify(one)}`);
    const pairs = await sockPairs(node).catch((err: unknown) => `mapEntryCount failed: ${(err as Error).message}`);
    const joined = from ? (fionreadBlind ? 2 : 4) : 0;
    t.equal(pairs, joined, `sockets of the live connection in ml_sock_pairs: ${joined}`);
    await setOn(!from);
    const two = JSON.parse(await p.waitForLine((l) => l.includes('"phase": 2'), { timeoutMs: 8000 })) as Record<string, number>;
    const d = delta(before, await counters(node));
    t.equal(two['got_by_fionread'], 100, `after the flip, FIONREAD announces the echo: ${JSON.stringify(two)}; counters ${JSON.stringify(d)}`);
    await p.exited;
    t.equal(await until(() => sockPairs(node), (n) => n === 0, 3000), 0, 'nothing left after the close');
  });
}
