// meshlane's main job on a local sandbox node, shown step by step.
//
// This stage of the demo runs meshlane as a chained CNI plugin the way a
// container runtime does: the real `bridge` + `host-local` plugins set up a pod
// network namespace, then dist/meshlane gets their result as prevResult; DEL
// runs in reverse. Everything is made under a unique prefix and removed at the end.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execPlugin, type Conflist, type Json, type Runtime } from './sandbox/cni-chain.js';
import { addNetns, ip, removeByPrefix } from './sandbox/netns.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const exe = join(root, 'dist', 'meshlane');
const PREFIX = 'mldemo';

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

async function main(): Promise<void> {
  if (!existsSync(exe)) throw new Error(`${exe} is missing: run 'npm run build' (scripts/demo.sh does)`);
  await removeByPrefix(PREFIX);
  const state = mkdtempSync(join(tmpdir(), 'meshlane-demo-'));
  const ns = `${PREFIX}pod1`;
  try {
    const netns = await addNetns(ns);
    const list: Conflist = {
      cniVersion: '1.1.0',
      name: 'meshlane-demo',
      plugins: [
        {
          type: 'bridge',
          bridge: `${PREFIX}br0`,
          isGateway: false,
          ipMasq: false,
          ipam: { type: 'host-local', ranges: [[{ subnet: '10.213.99.0/24' }], [{ subnet: 'fd00:213:99::/64' }]], dataDir: join(state, 'ipam') },
        },
        { type: 'meshlane', log_level: 'debug', log_file: join(state, 'meshlane.log') },
      ],
    };
    const rt: Runtime = {
      containerId: 'demo0001',
      netns,
      ifname: 'eth0',
      args: { K8S_POD_NAMESPACE: 'demo', K8S_POD_NAME: 'web-0', K8S_POD_UID: '6b8f1f0e-0000-4000-8000-000000000001' },
      binDirs: [dirname(exe), '/usr/lib/cni'],
    };
    say(`sandbox node: pod netns ${ns}, bridge ${PREFIX}br0, CNI chain bridge -> host-local -> meshlane`);
    const fromBridge = await execPlugin('ADD', list, list.plugins[0] as Json, rt);
    say(`bridge ADD      -> ${JSON.stringify((fromBridge?.['ips'] as Json[]).map((i) => i['address']))}`);
    const fromMeshlane = await execPlugin('ADD', list, list.plugins[1] as Json, rt, fromBridge);
    const same = JSON.stringify(fromMeshlane) === JSON.stringify(fromBridge);
    say(`meshlane ADD    -> result handed on ${same ? 'unchanged' : 'CHANGED (unexpected)'}`);
    say(`pod interface   -> ${(await ip(['-n', ns, '-br', 'addr', 'show', 'dev', 'eth0'])).trim()}`);
    await execPlugin('DEL', list, list.plugins[1] as Json, rt, fromMeshlane);
    await execPlugin('DEL', list, list.plugins[0] as Json, rt, fromMeshlane);
    say('meshlane DEL, bridge DEL -> done (reverse order, cached result as prevResult)');
    if (!same) throw new Error('meshlane changed the previous result');
    say('demo: OK');
  } finally {
    await removeByPrefix(PREFIX);
    rmSync(state, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
