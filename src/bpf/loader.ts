// Load, pin, attach, replace and remove meshlane's datapath.
//
// Pin layout (one directory, so one `rm -r` and one detach undo everything):
//   <pinDir>/maps/<map>     every map; reused as they are on every later load
//   <pinDir>/progs/<prog>   the programs currently attached
//   <pinDir>/staging/       a load in progress (removed when done or on the next run)
//
// A reload never drops a registration: maps already pinned are handed to the
// new programs (`bpftool prog loadall ... map name X pinned P`). Programs are
// replaced only when their code changed (the kernel's program tag differs): the
// new ones are attached next to the old ones, then the old ones detached, so
// there is no moment without interception. Attaching is idempotent: a program
// already attached to the cgroup is not attached again.
//
// What is read back from the kernel (what sits on the cgroup, a pinned
// program's id and tag) is read in-process (./readback.ts), never through
// bpftool's output, which depends on bpftool's version and the kernel's.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CommandError } from '../sys/exec.js';
import { isBpffs, isCgroup2 } from '../sys/fsinfo.js';
import { bpftool } from './bpftool.js';
import { cgroupAttachments, pinnedProgram, type CgroupAttachment } from './readback.js';
import { DatapathError, loadFailure } from './errors.js';
import { ALL_MAPS, ALL_PROGRAMS, CGROUP_PROGRAMS, HOOKED_PROGRAMS, NAME_PREFIX, SOCKMAP_PROGRAMS, pinPaths, type CgroupProgram } from './names.js';
import { errorMessage, isSystemError } from '../describe-error.js';

export interface DatapathLocation {
  /** Where everything is pinned, on a bpffs mount (e.g. /sys/fs/bpf/meshlane). */
  pinDir: string;
  /** The cgroup v2 directory every program attaches to (the node's cgroup root). */
  cgroupDir: string;
}

/**
 * The datapath built twice (scripts/build.mjs): `path` (dist/bpf/meshlane.o)
 * for kernels whose sock_ops, sk_msg and cgroup getsockopt programs can call
 * bpf_get_netns_cookie (5.15 on), `compatPath` (dist/bpf/meshlane-compat.o)
 * for older ones (5.10 on), which reads the same cookie from socket storage.
 */
export interface DatapathObjects {
  path: string;
  compatPath: string;
}

/** What a kernel probe found that chooses between the objects; unknown (undefined): try `path` first. */
export interface ObjectChoice {
  netnsCookieInSockops?: boolean;
}

/** The objects to try, in order: a single path is loaded as it is. */
export function objectsToTry(object: string | DatapathObjects, kernel: ObjectChoice = {}): string[] {
  if (typeof object === 'string') return [object];
  if (kernel.netnsCookieInSockops === true) return [object.path];
  if (kernel.netnsCookieInSockops === false) return [object.compatPath];
  return [object.path, object.compatPath];
}

/**
 * Did a load fail for what the compat object does without? The verifier's words
 * of kernels before 5.15 ("unknown func bpf_get_netns_cookie#122" in sock_ops,
 * sk_msg and getsockopt programs) and before 5.12 (a global function with a
 * pointer argument: "Arg#0 type PTR in ml_cidr_match() is not supported yet").
 */
export function isCompatFailure(err: unknown): boolean {
  return err instanceof DatapathError && /unknown func bpf_get_netns_cookie#|type PTR in \w+\(\) is not supported yet/.test(err.message);
}

export interface InstallReport {
  /** The object whose programs are attached now (one of DatapathObjects when both were given). */
  object: string;
  /** Maps that existed and were kept, with every entry. */
  reusedMaps: string[];
  /** Maps created by this load. */
  createdMaps: string[];
  /** true when programs were loaded and swapped in; false when the attached ones were already this code. */
  programsReplaced: boolean;
  /** Attachments made by this call (`<attach type>:<prog>`). */
  attached: string[];
  /** Attachments of older programs removed by this call. */
  detached: string[];
}

export function requireBpffs(pinDir: string): void {
  const parent = dirname(pinDir);
  const onBpffs = existsSync(pinDir) ? isBpffs(pinDir) : isBpffs(parent);
  if (!onBpffs) {
    throw new DatapathError(
      `${pinDir} is not on a BPF filesystem: mount one with 'mount -t bpf bpf ${existsSync(parent) ? parent : '/sys/fs/bpf'}' (meshlane install mounts /sys/fs/bpf when it is missing)`,
    );
  }
}

export function requireCgroup2(cgroupDir: string): void {
  if (!existsSync(cgroupDir) || !isCgroup2(cgroupDir)) {
    throw new DatapathError(
      `${cgroupDir} is not a cgroup v2 directory: meshlane attaches to the cgroup v2 hierarchy (see the cgroup2 line of /proc/mounts; a hybrid host has it at /sys/fs/cgroup/unified)`,
    );
  }
}

function pinnedNames(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (err) {
    if (!isSystemError(err)) throw err; // not there (nothing pinned) or not readable
    return [];
  }
}


async function attachedOnCgroup(cgroupDir: string): Promise<CgroupAttachment[]> {
  try {
    return cgroupAttachments(cgroupDir);
  } catch (err) {
    throw new DatapathError(`cannot list the programs attached to ${cgroupDir}: ${errorMessage(err)}`, { cause: err });
  }
}

/** Programs pinned in `progsDir`, by name → id and tag. */
async function pinnedPrograms(progsDir: string): Promise<Map<string, { id: number; tag: string }>> {
  const out = new Map<string, { id: number; tag: string }>();
  for (const name of pinnedNames(progsDir)) {
    const info = pinnedProgram(join(progsDir, name));
    out.set(name, { id: info.id, tag: info.tag });
  }
  return out;
}

/** Load the object's programs into `staging`, reusing every map already pinned and pinning new ones. */
async function loadIntoStaging(objectPath: string, pinDir: string): Promise<{ reused: string[]; created: string[] }> {
  const paths = pinPaths(pinDir);
  const staging = join(pinDir, 'staging');
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  mkdirSync(paths.maps, { recursive: true });
  const reused = ALL_MAPS.filter((m) => existsSync(paths.map(m)));
  const created = ALL_MAPS.filter((m) => !reused.includes(m));
  const args = ['prog', 'loadall', objectPath, join(staging, 'progs')];
  for (const m of reused) args.push('map', 'name', m, 'pinned', paths.map(m));
  if (created.length > 0) args.push('pinmaps', join(staging, 'maps'));
  try {
    await bpftool(args);
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw loadFailure(objectPath, err);
  }
  for (const m of created) {
    const from = join(staging, 'maps', m);
    if (!existsSync(from)) {
      throw new DatapathError(`${objectPath} has no map '${m}': the object and this meshlane build do not match`);
    }
    renameSync(from, paths.map(m));
  }
  for (const p of ALL_PROGRAMS) {
    if (!existsSync(join(staging, 'progs', p))) {
      rmSync(staging, { recursive: true, force: true });
      throw new DatapathError(`${objectPath} has no program '${p}': the object and this meshlane build do not match`);
    }
  }
  return { reused, created };
}

/** Load the first object this kernel takes; only a compat failure (isCompatFailure) moves on to the next. */
async function loadFirstThatFits(objects: string[], pinDir: string): Promise<{ objectPath: string; reused: string[]; created: string[] }> {
  for (const [i, objectPath] of objects.entries()) {
    try {
      return { objectPath, ...(await loadIntoStaging(objectPath, pinDir)) };
    } catch (err) {
      if (i === objects.length - 1 || !isCompatFailure(err)) throw err;
    }
  }
  throw new DatapathError('no eBPF object to load');
}

/**
 * Attach the programs pinned in `progsDir` to the cgroup and the sockhash, each
 * exactly once, then detach every other meshlane program (an older version) from
 * the same hooks. Returns what changed.
 */
async function attachFrom(progsDir: string, loc: DatapathLocation): Promise<{ attached: string[]; detached: string[] }> {
  const attached: string[] = [];
  const detached: string[] = [];
  const progs = await pinnedPrograms(progsDir);
  const current = await attachedOnCgroup(loc.cgroupDir);
  for (const p of HOOKED_PROGRAMS) {
    const id = progs.get(p.name)?.id;
    if (id === undefined && CGROUP_PROGRAMS.includes(p)) throw new DatapathError(`program ${p.name} is not pinned in ${progsDir}`);
    if (id !== undefined && !current.some((a) => a.id === id)) {
      await bpftool(['cgroup', 'attach', loc.cgroupDir, p.attachType, 'pinned', join(progsDir, p.name), 'multi']).catch((err: unknown) => {
        throw new DatapathError(`attaching ${p.name} (${p.attachType}) to ${loc.cgroupDir} failed: ${errorMessage(err)}`, { cause: err });
      });
      attached.push(`${p.attachType}:${p.name}`);
    }
    for (const old of current.filter((a) => a.attach_type === p.shownAs && a.id !== id && (a.name ?? '').startsWith(NAME_PREFIX))) {
      await bpftool(['cgroup', 'detach', loc.cgroupDir, p.attachType, 'id', String(old.id)]);
      detached.push(`${p.attachType}:${old.name ?? old.id}#${old.id}`);
    }
  }
  const maps = pinPaths(loc.pinDir);
  for (const p of SOCKMAP_PROGRAMS) {
    // A sockmap holds one program per attach type: attaching replaces the previous one.
    await bpftool(['prog', 'attach', 'pinned', join(progsDir, p.name), p.attachType, 'pinned', maps.map(p.map)]);
  }
  return { attached, detached };
}

/**
 * Load (or reload) the datapath from `objectPath` and attach it. Safe to call
 * any number of times: maps and their entries are kept, programs are replaced
 * only when their code changed, and each hook ends with exactly one meshlane program.
 */
export async function installDatapath(loc: DatapathLocation, object: string | DatapathObjects, kernel: ObjectChoice = {}): Promise<InstallReport> {
  requireBpffs(loc.pinDir);
  requireCgroup2(loc.cgroupDir);
  mkdirSync(loc.pinDir, { recursive: true });
  const paths = pinPaths(loc.pinDir);
  const staging = join(loc.pinDir, 'staging');
  const { objectPath, reused, created } = await loadFirstThatFits(objectsToTry(object, kernel), loc.pinDir);

  const old = await pinnedPrograms(paths.progs);
  const fresh = await pinnedPrograms(join(staging, 'progs'));
  const same = old.size === fresh.size && [...fresh].every(([name, p]) => old.get(name)?.tag === p.tag);
  if (same) {
    // The attached programs are this code already: keep them (and their live state).
    rmSync(staging, { recursive: true, force: true });
    const { attached, detached } = await attachFrom(paths.progs, loc);
    return { object: objectPath, reusedMaps: reused, createdMaps: created, programsReplaced: false, attached, detached };
  }
  const { attached, detached } = await attachFrom(join(staging, 'progs'), loc);
  rmSync(paths.progs, { recursive: true, force: true });
  renameSync(join(staging, 'progs'), paths.progs);
  rmSync(staging, { recursive: true, force: true });
  return { object: objectPath, reusedMaps: reused, createdMaps: created, programsReplaced: true, attached, detached };
}

/** Detach every meshlane program from the cgroup and the sockhash. Missing pieces are fine. */
export async function detachDatapath(loc: DatapathLocation): Promise<string[]> {
  const detached: string[] = [];
  // Nothing can be attached to a directory that is not cgroup v2 (a node without it was refused at install).
  if (existsSync(loc.cgroupDir) && isCgroup2(loc.cgroupDir)) {
    const current = await attachedOnCgroup(loc.cgroupDir);
    for (const p of HOOKED_PROGRAMS) {
      for (const a of current.filter((x) => x.attach_type === p.shownAs && (x.name ?? '').startsWith(NAME_PREFIX))) {
        await bpftool(['cgroup', 'detach', loc.cgroupDir, p.attachType, 'id', String(a.id)]);
        detached.push(`${p.attachType}:${a.name ?? a.id}#${a.id}`);
      }
    }
  }
  const paths = pinPaths(loc.pinDir);
  for (const p of SOCKMAP_PROGRAMS) {
    if (!existsSync(paths.prog(p.name)) || !existsSync(paths.map(p.map))) continue;
    try {
      await bpftool(['prog', 'detach', 'pinned', paths.prog(p.name), p.attachType, 'pinned', paths.map(p.map)]);
      detached.push(`${p.attachType}:${p.name}`);
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
    }
  }
  return detached;
}

/** Detach everything, then remove every pin (maps go with their last reference). */
export async function removeDatapath(loc: DatapathLocation): Promise<string[]> {
  const detached = await detachDatapath(loc);
  rmSync(loc.pinDir, { recursive: true, force: true });
  return detached;
}

/** Which meshlane programs are attached to the cgroup, by hook. */
export async function attachedPrograms(cgroupDir: string): Promise<CgroupAttachment[]> {
  const current = await attachedOnCgroup(cgroupDir);
  const ours = new Set(HOOKED_PROGRAMS.map((p) => p.shownAs));
  return current.filter((a) => ours.has(a.attach_type) && (a.name ?? '').startsWith(NAME_PREFIX));
}
