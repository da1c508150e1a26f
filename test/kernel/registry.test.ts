// The registry's pod entries in real pinned maps: an IP entry stays while
// another registered pod holds that address (the IP was reused after a missed
// DEL), whatever the number of pods registered, and goes with its last holder.
import t from 'tap';
import { requireRoot } from '../helpers/root.js';
import { datapathNode, install } from '../helpers/datapath.js';
import { DEFAULT_INTERCEPTION, encodePodConfig } from '../../src/bpf/pod-config.js';
import { mapEntryCount, readPodConfig, registerPods, unregisterPod, unregisterPods, type PodRegistration } from '../../src/bpf/registry.js';
import { MAP_NAMES } from '../../src/bpf/names.js';

requireRoot('the registry tests');

const config = encodePodConfig(DEFAULT_INTERCEPTION);

function pod(i: number, over: Partial<PodRegistration> = {}): PodRegistration {
  return { cgroupId: 0x7000_0000n + BigInt(i), ipv4: `10.77.${i >> 8}.${i & 255}`, ipv6: `fd00:77::${i.toString(16)}`, config, ...over };
}

t.test('an IP entry shared by two registrations goes with the last of them', async (t) => {
  const { node, loc } = await datapathNode(t, 'mlkrg', 154);
  await install(loc);
  for (const filler of [0, 1000]) {
    await t.test(`${filler} other pods registered`, async (t) => {
      const others = Array.from({ length: filler }, (_, i) => pod(i + 1));
      await registerPods(node.pinDir, others);
      // a: the pod whose DEL was missed; b: a new pod with a's IPv4 (and its own IPv6).
      const a = pod(5000);
      const b = pod(5001, { ipv4: a.ipv4 });
      await registerPods(node.pinDir, [a, b]);
      t.equal(await mapEntryCount(node.pinDir, MAP_NAMES.podsByCgroup), filler + 2);

      await unregisterPod(node.pinDir, a);
      t.ok(await readPodConfig(node.pinDir, a.ipv4 as string), "a's IPv4 stays: b holds it");
      t.notOk(await readPodConfig(node.pinDir, a.ipv6 as string), "a's IPv6 goes: nobody holds it");
      t.ok(await readPodConfig(node.pinDir, b.ipv6 as string), "b's IPv6 untouched");

      // An address held as another pod's IPv6 field only counts there, not as a byte match elsewhere.
      await unregisterPod(node.pinDir, b);
      t.notOk(await readPodConfig(node.pinDir, b.ipv4 as string), 'the shared IPv4 goes with its last holder');
      t.notOk(await readPodConfig(node.pinDir, b.ipv6 as string));

      const sample = others.slice(0, 3);
      for (const o of sample) t.ok(await readPodConfig(node.pinDir, o.ipv4 as string), `${o.ipv4} of a bystander stays`);
      await unregisterPods(node.pinDir, others);
      t.equal(await mapEntryCount(node.pinDir, MAP_NAMES.podsByCgroup), 0);
      t.equal(await mapEntryCount(node.pinDir, MAP_NAMES.podsByIp), 0, 'every IP entry gone with the last pod');
    });
  }
});

t.test('an address counts as held only in an ip4 or ip6 field, not as bytes across fields', async (t) => {
  const { node, loc } = await datapathNode(t, 'mlkrh', 155);
  await install(loc);
  // f's entry: ip4 = ::ffff:10.77.0.1, ip6 = 2001:db8::1. The 16 bytes from the
  // middle of ip4 to the middle of ip6 spell the IPv6 address e registers.
  const f = pod(1, { ipv4: '10.77.0.1', ipv6: '2001:db8::1' });
  const e = pod(2, { ipv4: undefined, ipv6: '0:ffff:a4d:1:2001:db8::' });
  // g's IPv6 is the IPv4-mapped form of f's IPv4: the same key in the IP map, held in g's ip6 field.
  const g = pod(3, { ipv4: undefined, ipv6: '::ffff:10.77.0.1' });
  await registerPods(node.pinDir, [f, e, g]);
  await unregisterPod(node.pinDir, e);
  t.notOk(await readPodConfig(node.pinDir, e.ipv6 as string), "e's address goes: f's entry holds its bytes only across two fields");
  await unregisterPod(node.pinDir, f);
  t.ok(await readPodConfig(node.pinDir, '10.77.0.1'), "f's IPv4 key stays: g holds it in its ip6 field");
  t.notOk(await readPodConfig(node.pinDir, '2001:db8::1'));
  await unregisterPod(node.pinDir, g);
  t.equal(await mapEntryCount(node.pinDir, MAP_NAMES.podsByIp), 0);
});
