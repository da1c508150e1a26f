// The native module (native/meshlane.c): the syscalls the CNI plugin makes
// itself (bpf, setns, netlink, legacy iptables' read-only getsockopt), so that no process runs on the pod path.
//
// In the single executable its bytes are one of the parts appended to the
// executable (scripts/build.mjs, ./native-embedded.ts). Node cannot dlopen from
// memory, so they are written to
// an O_TMPFILE beside the executable and loaded through /proc/self/fd/N; the fd
// stays open for the life of the process (glibc takes a reused /proc/self/fd/N
// path for the library it loaded first). Where O_TMPFILE is refused, a named
// temp file is loaded and removed at once. Then the same in TMPDIR. Under tsx
// (tests, scripts) the built dist/native/meshlane.node is loaded.
//
// It is loaded on first use, never at start: VERSION and the pass-through path
// do not pay for it.
import { closeSync, constants, existsSync, openSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { atomicTempPath } from './atomic-write.js';
import { embeddedNative } from './native-embedded.js';
import { errorMessage } from '../describe-error.js';

/** What native/meshlane.c exports. Each call returns the syscall's result or -errno. */
export interface NativeModule {
  bpf(cmd: number, attr: Uint8Array): number;
  addressOf(bytes: Uint8Array): bigint;
  setns(fd: number, nstype: number): number;
  ifNameToIndex(name: string): number;
  netlinkSocket(protocol: number): number;
  send(fd: number, bytes: Uint8Array): number;
  recv(fd: number, bytes: Uint8Array): number;
  close(fd: number): number;
  /** setrlimit(RLIMIT_MEMLOCK, infinity): 0 or -errno. */
  raiseMemlock(): number;
  /** The sockmap fault probe (native/sockmap_probe.h): its own sockhash, program and loopback sockets; the raw findings. */
  sockmapProbe(timeoutMs: number): unknown;
  /** getsockopt on a raw socket of `family` opened for the call in the thread's netns; `bytes` in and out. The answer's length, or -errno. */
  rawGetsockopt(family: number, level: number, optname: number, bytes: Uint8Array): number;
  readonly bpfAttrSize: number;
  readonly abi: number;
}

const ABI = 3;
// Linux: __O_TMPFILE | O_DIRECTORY (Node's fs.constants has no O_TMPFILE).
const O_TMPFILE = 0o20000000 | constants.O_DIRECTORY;

/** The native module could not be loaded: the CNI plugin cannot reach the kernel. */
export class NativeModuleError extends Error {
  override name = 'NativeModuleError';
}

let loaded: NativeModule | undefined;
let failure: NativeModuleError | undefined;

function isNativeModule(v: unknown): v is NativeModule {
  const m = v as Partial<NativeModule> | undefined;
  return !!m && typeof m.bpf === 'function' && typeof m.recv === 'function' && m.abi === ABI;
}

function dlopen(path: string): NativeModule {
  const mod: { exports: unknown } = { exports: {} };
  process.dlopen(mod, path);
  if (!isNativeModule(mod.exports)) throw new Error(`${path} is not meshlane's native module (ABI ${ABI})`);
  return mod.exports;
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
}

/** Load the bytes through an unnamed file in `dir`; the fd is kept open on success. */
function fromTmpfile(dir: string, bytes: Uint8Array): NativeModule {
  const fd = openSync(dir, O_TMPFILE | constants.O_RDWR, 0o700);
  try {
    writeAll(fd, bytes);
    return dlopen(`/proc/self/fd/${fd}`);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** Load the bytes through a named temp file in `dir`, removed right after. */
function fromNamedFile(dir: string, bytes: Uint8Array): NativeModule {
  const path = atomicTempPath(join(dir, 'meshlane.node'));
  try {
    const fd = openSync(path, 'wx', 0o700);
    try {
      writeAll(fd, bytes);
    } finally {
      closeSync(fd);
    }
    return dlopen(path);
  } finally {
    rmSync(path, { force: true });
  }
}

/** os.tmpdir() without loading node:os: TMPDIR, TMP, TEMP, else /tmp. */
function tmpdir(): string {
  const dir = process.env['TMPDIR'] || process.env['TMP'] || process.env['TEMP'] || '/tmp';
  return dir.length > 1 && dir.endsWith('/') ? dir.slice(0, -1) : dir;
}

function loadEmbedded(bytes: Uint8Array): NativeModule {
  const tried: string[] = [];
  for (const dir of [...new Set([dirname(process.execPath), tmpdir()])]) {
    for (const how of [fromTmpfile, fromNamedFile]) {
      try {
        return how(dir, bytes);
      } catch (err) {
        tried.push(`${how === fromTmpfile ? 'O_TMPFILE' : 'temp file'} in ${dir}: ${errorMessage(err).split('\n')[0] ?? ''}`);
      }
    }
  }
  throw new NativeModuleError(`cannot load meshlane's native module (${tried.join('; ')}); the executable's directory must be writable and not mounted noexec`);
}

function devPath(): string {
  const fromEnv = process.env['MESHLANE_NATIVE_MODULE'];
  if (fromEnv) return fromEnv;
  // src/sys/native.ts -> <repo>/dist/native/meshlane.node
  return join(dirname(new URL(import.meta.url).pathname), '..', '..', 'dist', 'native', 'meshlane.node');
}

/** The native module, loaded on first use. Throws NativeModuleError (every time) when it cannot be loaded. */
export function native(): NativeModule {
  if (loaded) return loaded;
  if (failure) throw failure;
  try {
    const bytes = embeddedNative();
    if (bytes) {
      loaded = loadEmbedded(bytes);
    } else {
      const path = devPath();
      if (!existsSync(path)) throw new NativeModuleError(`${path} is missing: run 'npm run build' (it builds native/meshlane.c)`);
      loaded = dlopen(path);
    }
    return loaded;
  } catch (err) {
    failure = err instanceof NativeModuleError ? err : new NativeModuleError(`cannot load meshlane's native module: ${errorMessage(err)}`, { cause: err });
    throw failure;
  }
}

/** Load the module now if it can be (before a lock is taken: loading writes and maps a file); a failure is reported by the next native() call. */
export function preloadNative(): void {
  try {
    native();
  } catch {
    // native() throws the same error again where it is used
  }
}
