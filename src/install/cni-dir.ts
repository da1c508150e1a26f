// The CNI config dir on disk: read the candidate files, write one atomically
// with the primary's mode, and keep the primary's original bytes in the state dir
// so that uninstall can give them back.
import { existsSync, lstatSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../sys/atomic-write.js';
import { mkdirp } from '../sys/mkdirp.js';
import { CNI_CONFIG_EXTENSIONS, fileExtension, type ConfigFile } from './cniconf/files.js';
import { errnoOf, errorMessage, isSystemError } from '../describe-error.js';

/** A config larger than this is not a CNI config; it is skipped rather than read. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

export interface DirListing {
  files: ConfigFile[];
  /** Files that could not be read, with why. */
  unreadable: Array<{ name: string; reason: string }>;
}

export function readConfigFiles(dir: string): DirListing {
  const files: ConfigFile[] = [];
  const unreadable: Array<{ name: string; reason: string }> = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return { files, unreadable };
    throw err;
  }
  for (const name of names) {
    if (!(CNI_CONFIG_EXTENSIONS as readonly string[]).includes(fileExtension(name))) continue;
    const path = join(dir, name);
    try {
      const st = statSync(path);
      if (!st.isFile()) continue;
      if (st.size > MAX_CONFIG_BYTES) {
        unreadable.push({ name, reason: `larger than ${MAX_CONFIG_BYTES} bytes` });
        continue;
      }
      files.push({ name, bytes: readFileSync(path) });
    } catch (err) {
      unreadable.push({ name, reason: errnoOf(err) ?? errorMessage(err) });
    }
  }
  return { files, unreadable };
}

/** Write `file` into `dir` atomically, with `mode` (the primary's, so a 0600 config stays 0600). */
export function writeConfig(dir: string, file: ConfigFile, mode: number): void {
  if (file.name.includes('/') || file.name.startsWith('.')) throw new Error(`refusing to write ${JSON.stringify(file.name)} into ${dir}`);
  writeFileAtomic(join(dir, file.name), file.bytes, mode & 0o7777);
}

export function fileMode(dir: string, name: string, fallback = 0o644): number {
  try {
    return lstatSync(join(dir, name)).mode & 0o7777;
  } catch (err) {
    if (!isSystemError(err)) throw err;
    return fallback;
  }
}

export function originalsDir(stateDir: string): string {
  return join(stateDir, 'installer', 'originals');
}

function safeName(name: string): string {
  if (name.includes('/') || name === '' || name === '.' || name === '..') throw new Error(`bad config file name ${JSON.stringify(name)}`);
  return name;
}

export function loadOriginal(stateDir: string, name: string): ConfigFile | undefined {
  const path = join(originalsDir(stateDir), safeName(name));
  return existsSync(path) ? { name, bytes: readFileSync(path) } : undefined;
}

export function saveOriginal(stateDir: string, original: ConfigFile): void {
  mkdirp(originalsDir(stateDir), 0o700);
  writeFileAtomic(join(originalsDir(stateDir), safeName(original.name)), original.bytes, 0o600);
}

export function listOriginals(stateDir: string): ConfigFile[] {
  const dir = originalsDir(stateDir);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => !n.startsWith('.')).map((name) => ({ name, bytes: readFileSync(join(dir, name)) }));
}

export function dropOriginal(stateDir: string, name: string): void {
  rmSync(join(originalsDir(stateDir), safeName(name)), { force: true });
}
