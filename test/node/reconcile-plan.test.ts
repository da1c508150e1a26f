// The reconcile loop's decisions, on recorded inputs: which sandboxes to
// register, which records to drop, and which to leave alone.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { DEFAULT_UNKNOWN_GRACE_MS, planReconcile, registrationTarget, type ObservedSandbox, type ReconcileInput } from '../../src/node/reconcile-plan.js';
import type { AttachmentRecord } from '../../src/node/records.js';
import { DEFAULT_INTERCEPTION } from '../../src/bpf/pod-config.js';
import { upstreamFixtures } from '../helpers/paths.js';

function annotationsOf(file: string): Record<string, string> {
  return (JSON.parse(readFileSync(join(upstreamFixtures, 'pods', file), 'utf8')) as { metadata: { annotations: Record<string, string> } }).metadata.annotations;
}
const sidecar = annotationsOf('istio-sidecar-cni-native.json');
const classic = annotationsOf('istio-sidecar-classic.json');
const gateway = annotationsOf('istio-gateway.json');

const NOW = Date.parse('2026-12-07T02:00:00Z');
const OLD = new Date(NOW - DEFAULT_UNKNOWN_GRACE_MS - 1000).toISOString();
const FRESH = new Date(NOW - 5000).toISOString();

function sb(id: string, over: Partial<ObservedSandbox> = {}): ObservedSandbox {
  return { id, namespace: 'shop', name: `pod-${id}`, uid: `00000000-0000-4000-8000-0000000000${id.padStart(2, '0').slice(-2)}`, ready: true, annotations: sidecar, ...over };
}

function rec(containerId: string, over: Partial<AttachmentRecord> = {}): AttachmentRecord {
  return {
    version: 1,
    containerId,
    ifname: 'eth0',
    netns: `/var/run/netns/cni-${containerId}`,
    namespace: 'shop',
    name: `pod-${containerId}`,
    podUid: `00000000-0000-4000-8000-0000000000${containerId.padStart(2, '0').slice(-2)}`,
    cgroupPath: `/sys/fs/cgroup/kubepods/besteffort/pod${containerId}`,
    cgroupId: String(1000 + containerId.length * 7 + containerId.charCodeAt(0)),
    proxyUid: 1337,
    proxyGid: 1337,
    dnsCapture: false,
    interception: DEFAULT_INTERCEPTION,
    createdAt: OLD,
    ...over,
  };
}

function input(over: Partial<ReconcileInput>): ReconcileInput {
  return { sandboxes: [], records: [], cgroupExists: () => true, excludeNamespaces: ['kube-system'], now: NOW, ...over };
}

t.test('a ready sidecar sandbox with no record is registered; plain, classic, gateway and excluded ones are not', async (t) => {
  const plan = planReconcile(
    input({
      sandboxes: [
        sb('1'),
        sb('2', { annotations: { app: 'plain' } }),
        sb('3', { annotations: classic }),
        sb('4', { annotations: gateway }),
        sb('5', { namespace: 'kube-system' }),
        sb('6', { ready: false }),
        sb('7', { namespace: '', name: '' }),
        sb('8', { annotations: Object.create(null) as Record<string, string> }),
      ],
    }),
  );
  t.same(plan.register.map((r) => r.sandbox.id), ['1']);
  t.equal(plan.register[0]?.pod.uid, sb('1').uid, 'the pod carries its uid (the pod cgroup is found by it)');
  t.same(plan.drop, []);
  const skipped = new Map(plan.skipped.map((s) => [s.sandbox.id, s.reason]));
  t.notOk(skipped.has('2') || skipped.has('3') || skipped.has('4') || skipped.has('5'), 'pods the mesh does not own are not even reported');
  const undecided = planReconcile(input({ sandboxes: [sb('10', { annotations: { 'sidecar.istio.io/status': '{"initContainers":null,"containers":["istio-proxy"]}' } })] }));
  t.same(undecided.register, []);
  t.match(undecided.skipped, [{ sandbox: { id: '10' }, reason: /do not decide/ }], 'a pod the annotations do not decide waits for its next ADD (the API is for the plugin to ask)');
});

t.test('a sandbox that already has its record is left alone', async (t) => {
  const plan = planReconcile(input({ sandboxes: [sb('1')], records: [rec('1')] }));
  t.same(plan.register, []);
  t.same(plan.drop, []);
});

t.test('a pod registered under another ready sandbox is not registered twice', async (t) => {
  const plan = planReconcile(input({ sandboxes: [sb('1'), sb('9', { uid: sb('1').uid })], records: [rec('1')] }));
  t.same(plan.register, []);
  t.match(plan.skipped, [{ sandbox: { id: '9' }, reason: /another sandbox/ }]);
});

t.test('records of gone pods are dropped, with the reason', async (t) => {
  const gone = rec('11');
  const plan = planReconcile(
    input({
      sandboxes: [sb('12', { ready: false }), sb('13')],
      records: [gone, rec('12'), rec('13'), rec('14'), rec('15', { createdAt: FRESH }), rec('16', { createdAt: 'garbage' })],
      cgroupExists: (p) => p !== gone.cgroupPath,
    }),
  );
  const why = new Map(plan.drop.map((d) => [d.record.containerId, d.reason]));
  t.equal(why.get('11'), 'pod cgroup gone');
  t.equal(why.get('12'), 'sandbox not ready');
  t.equal(why.get('14'), 'sandbox unknown to the runtime');
  t.notOk(why.has('13'), 'a ready sandbox keeps its record');
  t.notOk(why.has('15'), 'a record younger than the grace period is kept (its ADD may still be running)');
  t.notOk(why.has('16'), 'a record of unreadable age is kept until its cgroup goes');
});

t.test('without the runtime, only records whose pod cgroup is gone are dropped', async (t) => {
  const plan = planReconcile(input({ sandboxes: undefined, records: [rec('21'), rec('22')], cgroupExists: (p) => !p.endsWith('pod21') }));
  t.same(plan.drop.map((d) => d.record.containerId), ['21']);
  t.same(plan.register, []);
});

t.test('a stale record sharing its pod cgroup with a live one keeps the maps', async (t) => {
  const live = rec('31');
  const stale = rec('32', { cgroupId: live.cgroupId, podUid: live.podUid });
  const plan = planReconcile(input({ sandboxes: [sb('31')], records: [live, stale] }));
  t.match(plan.drop, [{ record: { containerId: '32' }, reason: 'sandbox unknown to the runtime', keepMaps: true }]);
  const alone = planReconcile(input({ sandboxes: [], records: [stale] }));
  t.match(alone.drop, [{ keepMaps: false }]);
});

t.test('hostile annotations from the runtime are skipped with the reason, never thrown', async (t) => {
  const huge = { 'sidecar.istio.io/status': 'x'.repeat(300 * 1024) };
  const plan = planReconcile(input({ sandboxes: [sb('41', { annotations: huge })] }));
  t.same(plan.register, []);
  t.match(plan.skipped, [{ sandbox: { id: '41' }, reason: /cannot be read/ }]);
});

t.test('the runtime detail decides whether a candidate can be registered', async (t) => {
  t.same(registrationTarget({ ready: true, hostNetwork: false, ips: ['10.0.0.1'], netns: '/var/run/netns/x' }), { netns: '/var/run/netns/x', ips: ['10.0.0.1'] });
  t.match(registrationTarget({ ready: false, hostNetwork: false, ips: ['10.0.0.1'], netns: '/x' }), { skip: /no longer ready/ });
  t.match(registrationTarget({ ready: true, hostNetwork: true, ips: ['10.0.0.1'], netns: '/x' }), { skip: /hostNetwork/ });
  t.match(registrationTarget({ ready: true, hostNetwork: false, ips: [], netns: '/x' }), { skip: /no IP/ });
  t.match(registrationTarget({ ready: true, hostNetwork: false, ips: ['10.0.0.1'], netns: undefined }), { skip: /network namespace/ });
});
