// A second "test run" for test/sandbox/cleanup.test.ts: makes a sandbox node
// with a pod, a process and a pin, prints where they are as one JSON line, then
// waits. A line "destroy" on stdin destroys the node and exits; being killed
// leaves everything behind, as a crashed run does.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createNode } from '../../testing/sandbox/node.js';

const filePrefix = process.argv[2] ?? '';
const node = await createNode({ prefix: filePrefix });
const pod = await node.addPod({ name: 'left-behind' });
const proc = await pod.spawn('sleep', ['600']);
const pinned = join(node.pinDir, 'some_map');
mkdirSync(pinned);
process.stdout.write(`${JSON.stringify({ prefix: node.prefix, netns: [node.netns, pod.netns], cgroupRoot: node.cgroupRoot, pinDir: node.pinDir, stateDir: node.stateDir, pinned, pid: proc.pid })}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === 'destroy') {
    await node.destroy();
    process.exit(0);
  }
}
