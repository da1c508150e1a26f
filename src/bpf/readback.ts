// What the installer and `meshlane status` read back from the kernel, in-process
// (bpf(2) through the native module), so that it works whatever bpftool the
// node or image has: `bpftool -j cgroup show` of bpftool 7.1 sends a field of
// Linux 6.0 in BPF_PROG_QUERY and fails on 5.10 once anything is attached.
//   - the programs attached to a cgroup, per hook: BPF_PROG_QUERY (the attr
//     layout every kernel reads), then BPF_PROG_GET_FD_BY_ID and
//     BPF_OBJ_GET_INFO_BY_FD for each program's name;
//   - a pinned program's id, tag and name: BPF_OBJ_GET, BPF_OBJ_GET_INFO_BY_FD.
import { closeSync } from 'node:fs';
import { objGet, progFdById, progInfo, progQuery, type ProgInfo } from '../sys/bpf.js';
import { HOOKED_PROGRAMS } from './names.js';

/** One program attached to a cgroup hook (the fields `bpftool -j cgroup show` printed). */
export interface CgroupAttachment {
  id: number;
  /** libbpf's attach type string (CgroupProgram.shownAs). */
  attach_type: string;
  /** The program's name; undefined when it went away between the query and the look-up. */
  name?: string;
}

/** A program by id: its info, undefined when it is gone. */
function progById(id: number): ProgInfo | undefined {
  const fd = progFdById(id);
  if (fd === undefined) return undefined;
  try {
    return progInfo(fd, `program id ${id}`);
  } finally {
    closeSync(fd);
  }
}

/** The programs attached directly to `cgroupDir` on the hooks meshlane uses, in the kernel's order per hook. */
export function cgroupAttachments(cgroupDir: string): CgroupAttachment[] {
  const out: CgroupAttachment[] = [];
  for (const hook of HOOKED_PROGRAMS) {
    for (const id of progQuery(cgroupDir, hook.attachTypeId)) {
      const info = progById(id);
      out.push({ id, attach_type: hook.shownAs, ...(info ? { name: info.name } : {}) });
    }
  }
  return out;
}

/** A pinned program's id, tag and name. */
export function pinnedProgram(path: string): ProgInfo {
  const fd = objGet(path);
  try {
    return progInfo(fd, path);
  } finally {
    closeSync(fd);
  }
}
