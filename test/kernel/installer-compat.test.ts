// The installer on a node that runs the compat build (kernels 5.10 to 5.14,
// where sock_ops cannot read the netns cookie): its ml_sock_create hook counts
// as part of the datapath. When that one attachment is lost, the next pass sees
// it and installs again, as for any other hook. The kernel here is newer, so
// the probe's answer on the netns cookie is injected ("missing"), which makes
// the installer pick meshlane-compat.o as it does on 5.10.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { createNode, type SandboxNode } from '../../testing/sandbox/node.js';
import { bpftool } from '../../src/bpf/bpftool.js';
import { attachedPrograms, removeDatapath } from '../../src/bpf/loader.js';
import { COMPAT_CGROUP_PROGRAMS, pinPaths } from '../../src/bpf/names.js';
import { probeKernel } from '../../src/bpf/probe-kernel.js';
import { Installer } from '../../src/install/installer.js';
import { INSTALL_FLAGS, parseOptions } from '../../src/install/options.js';
import { distBpfCompatObject, distBpfObjects, upstreamFixtures } from '../helpers/paths.js';
import { nodeDirArgs, nodeDirs } from '../helpers/node-dirs.js';
import { RecordingLogger } from '../helpers/recording-logger.js';
import { requireRoot } from '../helpers/root.js';

requireRoot('the installer compat test');
if (!existsSync(distBpfCompatObject)) throw new Error(`${distBpfCompatObject} is missing: run 'npm run build'`);

let node: SandboxNode | undefined;
t.teardown(async () => {
  if (node) await removeDatapath({ pinDir: node.pinDir, cgroupDir: node.cgroupRoot }).catch(() => undefined);
  await node?.destroy();
});
node = await createNode({ prefix: 'mlkic' });
const n = node;
const d = nodeDirs(n);
mkdirSync(d.netDir);
writeFileSync(join(d.netDir, '10-flannel.conflist'), readFileSync(join(upstreamFixtures, 'conflists', 'flannel-10-flannel.conflist')));

const log = new RecordingLogger();
const installer = new Installer(parseOptions([...nodeDirArgs(n), '--cri-socket', 'none'], {}, INSTALL_FLAGS), {
  log,
  env: {},
  selfExe: undefined,
  bpfObject: async () => distBpfObjects,
  // This kernel as it is, except that sock_ops "cannot" read the netns cookie: the compat build's case.
  probeKernel: (dir) => {
    const f = probeKernel({ cgroupDir: dir });
    return { ...f, optional: { ...f.optional, 'netns-cookie-in-sockops': { ok: false, why: 'missing', detail: 'injected by the test' } } };
  },
});
const sockCreate = COMPAT_CGROUP_PROGRAMS[0];
if (!sockCreate) throw new Error('no compat cgroup program in src/bpf/names.ts');
const onSockCreate = async (): Promise<number[]> => (await attachedPrograms(n.cgroupRoot)).filter((a) => a.attach_type === sockCreate.shownAs).map((a) => a.id);

t.test('the first pass loads the compat build and attaches ml_sock_create once', async (t) => {
  const r = await installer.pass({ datapath: true });
  t.match(r, { datapath: true, conflist: true });
  const ready = log.lines.find((l) => l.msg === 'datapath ready');
  t.equal(ready?.fields?.['object'], distBpfCompatObject, 'the compat object was loaded');
  t.ok(existsSync(pinPaths(n.pinDir).prog(sockCreate.name)), `${sockCreate.name} pinned`);
  t.equal((await onSockCreate()).length, 1, `${sockCreate.name} attached once`);
  t.equal(await installer.datapathAttached(), true);
});

t.test('a lost ml_sock_create attachment counts as not attached, and the next pass puts it back', async (t) => {
  const [id] = await onSockCreate();
  await bpftool(['cgroup', 'detach', n.cgroupRoot, sockCreate.attachType, 'id', String(id)]);
  t.same(await onSockCreate(), [], 'detached behind the installer\'s back');
  const before = log.lines.length;
  t.equal(await installer.datapathAttached(), false, 'the installer sees the missing hook');
  const said = log.lines.slice(before).find((l) => /not attached as installed/.test(l.msg));
  t.same(said?.fields?.['hooks'], [`${sockCreate.attachType}: 0`], 'and logs which hook');

  const r = await installer.pass({ datapath: false });
  t.equal(r.datapath, true, 'the pass installs again');
  t.same(await onSockCreate(), [id], 'the same pinned program is attached again (once)');
  t.equal(await installer.datapathAttached(), true);
});
