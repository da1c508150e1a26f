// The sockmap decision: probe findings in, faults, allowed modes, the mode in
// force and its message out. The findings below are the probe's answers on the
// kernels this project tests on (docs/datapath.md, "Sockmap fault probe"), plus
// made-up ones for each fault alone.
import t from 'tap';
import { parseProbe, type ProbeDirection, type SockmapProbe } from '../../src/bpf/sockmap-probe.js';
import { SET_F } from '../../src/bpf/layout.js';
import { decideSockmap, faultsRefusing, sockmapFaults, sockmapFlags, type SockmapFault } from '../../src/install/sockmap-safety.js';

const BYTES = 1000;
const soundRedirected: ProbeDirection = { epoll: true, poll: true, fionread: BYTES, splice: BYTES, received: BYTES, intact: true, tcpBytes: 0 };
const soundTcp: ProbeDirection = { epoll: true, poll: true, fionread: BYTES, received: BYTES, intact: true, tcpBytes: BYTES };
const sound: SockmapProbe = { kernel: 'sound', bytes: BYTES, ms: 3, redirected: soundRedirected, tcp: soundTcp };

// What the native probe answered on this machine's 6.18.44 (raw, as the native module returns it).
const host618 = parseProbe(
  {
    stage: '', errno: 0, log: '', bytes: 1000, ms: 612.09,
    redirected: { epoll: 1, poll: 1, fionread: 1000, splice: -11, received: 1000, intact: 1, tcpBytes: 0 },
    tcp: { epoll: 1, poll: 1, fionread: 0, splice: -1000, received: 1000, intact: 1, tcpBytes: 1000 },
  },
  '6.18.44',
);

t.test('the raw answer is parsed and typed', async (t) => {
  t.same(host618.redirected, { epoll: true, poll: true, fionread: 1000, splice: -11, received: 1000, intact: true, tcpBytes: 0 });
  t.same(host618.tcp, { epoll: true, poll: true, fionread: 0, received: 1000, intact: true, tcpBytes: 1000 }, 'splice not tried on the TCP path: no field');
  t.equal(host618.ms, 612);
  const refused = parseProbe({ stage: 'BPF_PROG_LOAD (sk_msg)', errno: 22, log: 'a\nb\nlast line\n', bytes: 1000, ms: 1 }, '4.9.0');
  t.same(refused, { kernel: '4.9.0', bytes: 1000, ms: 1, failedStep: 'BPF_PROG_LOAD (sk_msg)', errno: 22, log: 'a | b | last line' });
  t.throws(() => parseProbe({ stage: '', bytes: 1000, ms: 1 }, 'x'), /no redirected result/);
  t.throws(() => parseProbe(null, 'x'), /no result/);
  t.throws(() => parseProbe({ stage: '', bytes: '1000', ms: 1 }, 'x'), /bytes is not a number/);
});

t.test('a sound kernel: every mode allowed, the requested one runs', async (t) => {
  t.same(sockmapFaults(sound), []);
  for (const mode of ['on', 'proxy-only'] as const) {
    const d = decideSockmap(mode, sound);
    t.equal(d.effective, mode);
    t.same(d.allowed, ['off', 'proxy-only', 'on']);
    t.match(d.message, new RegExp(`^sockmap ${mode}: this kernel passed the sockmap probe`));
  }
});

t.test('6.18.44 (this machine): FIONREAD misses TCP bytes, splice reads nothing: on refused, proxy-only runs', async (t) => {
  t.same(sockmapFaults(host618), ['splice-redirected', 'fionread-tcp']);
  const on = decideSockmap('on', host618);
  t.equal(on.effective, 'off');
  t.same(on.allowed, ['off', 'proxy-only']);
  t.same(on.refusedFor, ['splice-redirected', 'fionread-tcp']);
  t.match(on.message, /^sockmap on refused, running with sockmap off \(proxy-only passes on this kernel\): splice\(\) cannot read redirected bytes .*; FIONREAD does not count TCP bytes .*04af4efde58a.*kernel 6\.18\.44/);
  const po = decideSockmap('proxy-only', host618);
  t.equal(po.effective, 'proxy-only');
  t.same(po.refusedFor, []);
  t.match(po.message, /faults that do not concern proxy-only: splice-redirected, fionread-tcp/);
});

t.test('each fault alone: which modes it refuses', async (t) => {
  const cases: Array<[string, SockmapProbe, SockmapFault[], boolean]> = [
    ['redirect that did not happen', { ...sound, redirected: { ...soundRedirected, tcpBytes: BYTES } }, ['no-redirect'], true],
    ['tcpi_bytes_received unknown (-1) is not a fault', { ...sound, redirected: { ...soundRedirected, tcpBytes: -1 } }, [], false],
    ['redirected bytes altered', { ...sound, redirected: { ...soundRedirected, intact: false } }, ['data-redirected'], true],
    ['redirected bytes short', { ...sound, redirected: { ...soundRedirected, received: 10 } }, ['data-redirected'], true],
    ['no epoll wake-up for redirected bytes', { ...sound, redirected: { ...soundRedirected, epoll: false } }, ['epoll-redirected'], true],
    ['poll misses redirected bytes', { ...sound, redirected: { ...soundRedirected, poll: false } }, ['poll-redirected'], true],
    ['no epoll wake-up for TCP bytes', { ...sound, tcp: { ...soundTcp, epoll: false } }, ['epoll-tcp'], true],
    ['poll misses TCP bytes', { ...sound, tcp: { ...soundTcp, poll: false } }, ['poll-tcp'], true],
    ['TCP bytes lost', { ...sound, tcp: { ...soundTcp, received: 0, intact: false } }, ['data-tcp'], true],
    ['FIONREAD 0 for redirected bytes', { ...sound, redirected: { ...soundRedirected, fionread: 0 } }, ['fionread-redirected'], false],
    ['FIONREAD short for TCP bytes', { ...sound, tcp: { ...soundTcp, fionread: BYTES - 1 } }, ['fionread-tcp'], false],
    ['splice EAGAIN', { ...sound, redirected: { ...soundRedirected, splice: -11 } }, ['splice-redirected'], false],
    ['splice short', { ...sound, redirected: { ...soundRedirected, splice: 1 } }, ['splice-redirected'], false],
    ['the kernel refused the program', { kernel: 'k', bytes: BYTES, ms: 1, failedStep: 'BPF_PROG_LOAD (sk_msg)', errno: 22 }, ['unsupported'], true],
  ];
  for (const [name, probe, faults, refusesProxyOnly] of cases) {
    t.same(sockmapFaults(probe), faults, `${name}: faults`);
    t.same(faultsRefusing('on', faults), faults, `${name}: refuses on`);
    t.equal(decideSockmap('on', probe).effective, faults.length ? 'off' : 'on', `${name}: on runs only without faults`);
    t.equal(faultsRefusing('proxy-only', faults).length > 0, refusesProxyOnly, `${name}: refuses proxy-only: ${refusesProxyOnly}`);
    t.equal(decideSockmap('proxy-only', probe).effective, refusesProxyOnly ? 'off' : 'proxy-only', `${name}: proxy-only effective`);
    t.same(faultsRefusing('off', faults), [], `${name}: off is never refused`);
  }
});

t.test('off: no probe, nothing refused', async (t) => {
  const d = decideSockmap('off', undefined);
  t.same({ effective: d.effective, faults: d.faults, refusedFor: d.refusedFor }, { effective: 'off', faults: [], refusedFor: [] });
});

t.test('a probe that could not run refuses every redirect mode', async (t) => {
  for (const mode of ['on', 'proxy-only'] as const) {
    const d = decideSockmap(mode, new Error('the native module has no sockmapProbe (an older build)'));
    t.equal(d.effective, 'off');
    t.same(d.refusedFor, ['unsupported']);
    t.match(d.message, new RegExp(`^sockmap ${mode} refused, running with sockmap off: the kernel could not be probed .*older build`));
  }
  t.equal(decideSockmap('on', undefined).effective, 'off', 'no probe answer at all: off');
});

t.test('flags of each mode', async (t) => {
  t.equal(sockmapFlags('off', SET_F), 0);
  t.equal(sockmapFlags('on', SET_F), SET_F.SOCKMAP_REDIRECT);
  t.equal(sockmapFlags('proxy-only', SET_F), SET_F.SOCKMAP_REDIRECT | SET_F.SOCKMAP_PROXY_ONLY);
});
