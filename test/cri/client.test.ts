// meshlane's own CRI client (node:http2 + the wire codec) against a real gRPC
// server: @grpc/grpc-js serving runtime.v1 from test/e2e/cri-api.proto, the
// field numbers of k8s.io/cri-api. So both ends are independent encoders.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import t from 'tap';
import { criClient, CriError } from '../../src/cri/client.js';
import { netnsFromInfo } from '../../src/cri/messages.js';
import { repoRoot } from '../helpers/paths.js';

const def = protoLoader.loadSync(join(repoRoot, 'test', 'e2e', 'cri-api.proto'), { keepCase: true, longs: String, enums: String, defaults: true });
const pkg = grpc.loadPackageDefinition(def) as unknown as { runtime: { v1: { RuntimeService: grpc.ServiceClientConstructor } } };

const info = JSON.stringify({
  pid: 4242,
  runtimeSpec: { linux: { namespaces: [{ type: 'pid' }, { type: 'network', path: '/var/run/netns/cni-1234' }] } },
});
const hostile = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}.example.com/${'x'.repeat(40)}`, 'v'.repeat(500)]));
const sandboxes = [
  { id: 'a'.repeat(64), metadata: { name: 'web', uid: '0a0b0c0d-1111-4222-8333-444455556666', namespace: 'shop', attempt: 2 }, state: 'SANDBOX_READY', annotations: Object.assign(JSON.parse('{"__proto__":"kept as data"}') as Record<string, string>, { 'sidecar.istio.io/status': '{"initContainers":["istio-validation","istio-proxy"]}' }) },
  { id: 'b'.repeat(64), metadata: { name: 'old', uid: '1a0b0c0d-1111-4222-8333-444455556666', namespace: 'shop', attempt: 0 }, state: 'SANDBOX_NOTREADY', annotations: hostile },
];

const dir = mkdtempSync(join(tmpdir(), 'meshlane-cri-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const socket = join(dir, 'cri.sock');
const server = new grpc.Server();
let statusCalls = 0;
server.addService(pkg.runtime.v1.RuntimeService.service, {
  ListPodSandbox: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { items: sandboxes }),
  PodSandboxStatus: (call: grpc.ServerUnaryCall<{ pod_sandbox_id: string; verbose: boolean }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
    statusCalls += 1;
    const id = call.request.pod_sandbox_id;
    if (id === 'slow') return; // never answers: the client's deadline ends it
    if (id !== 'a'.repeat(64)) return cb({ code: grpc.status.NOT_FOUND, details: `sandbox ${id} not found` });
    cb(null, {
      status: {
        id,
        metadata: sandboxes[0]?.metadata,
        state: 'SANDBOX_READY',
        network: { ip: '10.1.2.3', additional_ips: [{ ip: 'fd00::3' }] },
        linux: { namespaces: { options: { network: 'POD' } } },
        annotations: { a: '1' },
      },
      info: call.request.verbose ? { info } : {},
    });
  },
});
await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
t.teardown(() => server.forceShutdown());

t.test('ListPodSandbox: every sandbox with its metadata, state and annotations', async (t) => {
  const c = criClient(socket);
  t.teardown(() => c.close());
  const list = await c.listPodSandboxes();
  t.equal(list.length, 2);
  t.match(list[0], { id: 'a'.repeat(64), name: 'web', namespace: 'shop', uid: '0a0b0c0d-1111-4222-8333-444455556666', attempt: 2, state: 'ready' });
  t.equal(list[0]?.annotations['sidecar.istio.io/status'], '{"initContainers":["istio-validation","istio-proxy"]}');
  t.equal(Object.getPrototypeOf(list[0]?.annotations), null, 'annotations have no prototype');
  t.equal(Object.getOwnPropertyDescriptor(list[0]?.annotations, '__proto__')?.value, 'kept as data');
  t.equal(list[1]?.state, 'notready');
  t.equal(Object.keys(list[1]?.annotations ?? {}).length, 200, 'a large annotation map arrives whole');
});

t.test('PodSandboxStatus: IPs, network mode and the netns from the verbose info', async (t) => {
  const c = criClient(socket);
  t.teardown(() => c.close());
  const st = await c.podSandboxStatus('a'.repeat(64));
  t.same(st.ips, ['10.1.2.3', 'fd00::3']);
  t.equal(st.hostNetwork, false);
  t.equal(st.state, 'ready');
  t.same(netnsFromInfo(st.info), { path: '/var/run/netns/cni-1234' });
});

t.test('a gRPC error status is a CriError naming the method and the status', async (t) => {
  const c = criClient(socket);
  t.teardown(() => c.close());
  const err = await c.podSandboxStatus('nope').catch((e: unknown) => e);
  t.ok(err instanceof CriError);
  t.match(err, { kind: 'status', method: 'PodSandboxStatus', grpcStatus: grpc.status.NOT_FOUND, message: /grpc-status 5: sandbox nope not found/ });
});

t.test('no answer within the deadline: a timeout, not a hang', async (t) => {
  const c = criClient(socket, 300);
  t.teardown(() => c.close());
  const err = await c.podSandboxStatus('slow').catch((e: unknown) => e);
  t.match(err, { kind: 'timeout', method: 'PodSandboxStatus' });
});

t.test('no runtime on the socket: unavailable, with the socket named', async (t) => {
  const c = criClient(join(dir, 'nothing.sock'), 2000);
  t.teardown(() => c.close());
  const err = await c.listPodSandboxes().catch((e: unknown) => e);
  t.ok(err instanceof CriError);
  t.match(err, { kind: 'unavailable', message: /nothing\.sock/ });
});

t.test('calls on one client share a connection', async (t) => {
  const c = criClient(socket);
  t.teardown(() => c.close());
  const before = statusCalls;
  await Promise.all([c.listPodSandboxes(), c.podSandboxStatus('a'.repeat(64)), c.podSandboxStatus('a'.repeat(64))]);
  t.equal(statusCalls - before, 2);
});
