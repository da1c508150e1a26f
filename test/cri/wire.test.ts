// The protobuf wire reader and writer: round trips, protobufjs as the
// independent encoder, and hostile bytes that must end in a WireError.
import { join } from 'node:path';
import protobuf from 'protobufjs';
import t from 'tap';
import { decodeListPodSandboxResponse, decodePodSandboxStatusResponse, encodePodSandboxStatusRequest, netnsFromInfo } from '../../src/cri/messages.js';
import { encode, readFields, str, WireError } from '../../src/cri/wire.js';
import { repoRoot } from '../helpers/paths.js';

const root = protobuf.loadSync(join(repoRoot, 'test', 'e2e', 'cri-api.proto'));
const List = root.lookupType('runtime.v1.ListPodSandboxResponse');
const Status = root.lookupType('runtime.v1.PodSandboxStatusResponse');
const StatusReq = root.lookupType('runtime.v1.PodSandboxStatusRequest');

t.test('varints and strings round-trip through our encoder and reader', async (t) => {
  const big = 2n ** 63n + 5n;
  const f = readFields(encode([{ field: 1, varint: big }, { field: 2, string: 'héllo' }, { field: 300, varint: true }]));
  t.equal(f[0]?.num, big);
  t.equal(str(f[1] as NonNullable<(typeof f)[1]>), 'héllo');
  t.match(f[2], { field: 300, num: 1n });
});

t.test('our PodSandboxStatusRequest is what protobufjs reads', async (t) => {
  const req = StatusReq.toObject(StatusReq.decode(encodePodSandboxStatusRequest('abc', true)));
  t.same(req, { podSandboxId: 'abc', verbose: true });
});

t.test('protobufjs-encoded answers decode to the same values', async (t) => {
  const list = List.encode(
    List.fromObject({
      items: [
        { id: 'x1', metadata: { name: 'p', uid: 'u', namespace: 'n', attempt: 3 }, state: 1, createdAt: '1700000000000000000', labels: { l: '1' }, annotations: { a: 'b', '': 'empty key' } },
      ],
    }),
  ).finish();
  t.same(decodeListPodSandboxResponse(list), [{ id: 'x1', name: 'p', uid: 'u', namespace: 'n', attempt: 3, state: 'notready', annotations: Object.assign(Object.create(null), { a: 'b', '': 'empty key' }) }]);
  const st = Status.encode(
    Status.fromObject({
      status: { id: 's', metadata: { name: 'p', uid: 'u', namespace: 'n' }, network: { ip: '', additionalIps: [{ ip: 'fd00::1' }] }, linux: { namespaces: { options: { network: 2 } } } },
      info: { info: '{}' },
    }),
  ).finish();
  t.match(decodePodSandboxStatusResponse(st), { id: 's', ips: ['fd00::1'], hostNetwork: true, state: 'ready' });
});

t.test('truncated, overlong and odd messages are WireErrors', async (t) => {
  const good = List.encode(List.fromObject({ items: [{ id: 'x', metadata: { name: 'p', uid: 'u', namespace: 'n' }, annotations: { a: 'b' } }] })).finish();
  for (let cut = 1; cut < good.length; cut++) {
    const r = (() => {
      try {
        decodeListPodSandboxResponse(good.subarray(0, cut));
        return 'ok';
      } catch (err) {
        return err instanceof WireError ? 'wire' : String(err);
      }
    })();
    t.ok(r === 'ok' || r === 'wire', `cut at ${cut}: ${r}`);
  }
  t.throws(() => readFields(Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])), WireError, 'a length past the end');
  t.throws(() => readFields(Uint8Array.from([0x0b])), WireError, 'wire type 3 (groups)');
  t.throws(() => readFields(Uint8Array.from([0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])), WireError, 'an 11-byte varint');
  t.throws(() => decodeListPodSandboxResponse(encode([{ field: 1, message: encode([{ field: 1, string: 'x'.repeat(300) }]) }])), WireError, 'an id longer than any Kubernetes name');
  t.throws(() => decodeListPodSandboxResponse(encode([{ field: 1, message: Uint8Array.from([0x0a, 0x01, 0xff]) }])), WireError, 'an id that is not UTF-8');
});

t.test('random bytes end in a WireError or a value, never anything else', async (t) => {
  let seed = 0x5eed;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed);
  let wire = 0;
  for (let i = 0; i < 3000; i++) {
    const buf = Uint8Array.from({ length: rnd() % 64 }, () => rnd() & 0xff);
    try {
      decodePodSandboxStatusResponse(buf);
    } catch (err) {
      if (!(err instanceof WireError)) t.fail(`seed ${0x5eed} case ${i}: ${String(err)}`);
      wire += 1;
    }
  }
  t.ok(wire > 0, `${wire} of 3000 random messages refused`);
});

t.test('the netns of a sandbox from the runtime info: spec path, else pid, else unknown', async (t) => {
  t.same(netnsFromInfo({ info: JSON.stringify({ runtimeSpec: { linux: { namespaces: [{ type: 'network', path: '/var/run/netns/cni-x' }] } }, pid: 9 }) }), { path: '/var/run/netns/cni-x' });
  t.same(netnsFromInfo({ info: JSON.stringify({ pid: 9 }) }), { pid: 9 });
  t.equal(netnsFromInfo({ info: JSON.stringify({ runtimeSpec: { linux: { namespaces: [{ type: 'network', path: 'relative' }] } } }) }), undefined);
  t.equal(netnsFromInfo({ info: 'not json' }), undefined);
  t.equal(netnsFromInfo({}), undefined);
  t.equal(netnsFromInfo({ info: JSON.stringify({ pid: 1 }) }), undefined, 'pid 1 is never a sandbox of ours to enter');
});
