// Where kubelet puts a pod's cgroup, for both cgroup drivers and every QoS class.
// kubelet creates it before it asks the runtime for the sandbox, so it exists at
// CNI ADD. The uid comes from CNI_ARGS (written by kubelet, but checked anyway:
// it becomes part of a path).
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

const UID = /^[0-9a-fA-F][0-9a-fA-F-]{0,63}$/;

export function isPodUid(uid: string): boolean {
  return UID.test(uid);
}

/** Relative paths kubelet may use for pod `uid`, cgroupfs layouts first, then systemd. */
export function podCgroupCandidates(uid: string): string[] {
  if (!isPodUid(uid)) throw new TypeError(`not a pod uid: ${JSON.stringify(uid.slice(0, 80))}`);
  const u = uid.replace(/-/g, '_');
  return [
    `kubepods/besteffort/pod${uid}`,
    `kubepods/burstable/pod${uid}`,
    `kubepods/pod${uid}`,
    `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${u}.slice`,
    `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${u}.slice`,
    `kubepods.slice/kubepods-pod${u}.slice`,
  ];
}

export interface PodCgroup {
  path: string;
  id: bigint;
}

/** The pod's cgroup under `cgroupRoot`, or undefined when kubelet has not made it (or the uid is unknown). */
export function findPodCgroup(cgroupRoot: string, uid: string): PodCgroup | undefined {
  for (const rel of podCgroupCandidates(uid)) {
    const path = join(cgroupRoot, rel);
    if (existsSync(path)) return { path, id: statSync(path, { bigint: true }).ino };
  }
  return undefined;
}
