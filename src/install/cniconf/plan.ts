// One install step over a directory listing: which file to write (or why to wait
// or refuse), from the primary the runtime would pick.
import { type ConfigFile, ConflistError } from './files.js';
import { hasEntry, insertEntry, type EditResult } from './chain.js';
import { scanCniConfigs, type PrimaryConfig, type SkippedConfig } from './primary.js';

export type InstallPlan =
  | { action: 'wait'; reason: string; skipped: SkippedConfig[] }
  | { action: 'none'; primary: PrimaryConfig; skipped: SkippedConfig[] }
  | {
      action: 'write';
      primary: PrimaryConfig;
      /** Write this (temp file + rename, with the primary's mode). */
      write: ConfigFile;
      /** Then remove this (the converted `.conf`), if set. */
      remove: string | undefined;
      skipped: SkippedConfig[];
    }
  | { action: 'refuse'; primary: PrimaryConfig; reason: string; skipped: SkippedConfig[] };

/**
 * Decide one round of the installer loop from the CNI dir's listing. Beyond
 * insertEntry it refuses to convert `X.conf` when `X.conflist` exists and is not
 * meshlane's (it would be overwritten), and when the new name would no longer be
 * the primary (another valid config sorts between the two names).
 */
export function planInstall(files: ReadonlyArray<ConfigFile>, entry: Readonly<Record<string, unknown>>): InstallPlan {
  const scan = scanCniConfigs(files);
  const { primary, skipped } = scan;
  if (primary === undefined) return { action: 'wait', reason: 'no valid CNI config yet', skipped };
  let result: EditResult;
  try {
    result = insertEntry(primary, entry);
  } catch (err) {
    if (err instanceof ConflistError) return { action: 'refuse', primary, reason: err.message, skipped };
    throw err;
  }
  if (!result.changed) return { action: 'none', primary, skipped };
  if (result.name !== primary.name) {
    const existing = files.find((f) => f.name === result.name);
    if (existing !== undefined && !hasEntry(existing.bytes, existing.name)) {
      return { action: 'refuse', primary, reason: `${primary.name} would become ${result.name}, which exists and is not meshlane's`, skipped };
    }
    const after = scanCniConfigs([...files.filter((f) => f.name !== primary.name && f.name !== result.name), { name: result.name, bytes: result.bytes }]).primary;
    if (after?.name !== result.name) {
      return { action: 'refuse', primary, reason: `${primary.name} would become ${result.name}, but then ${after?.name ?? 'nothing'} would be the primary config`, skipped };
    }
  }
  return { action: 'write', primary, write: { name: result.name, bytes: result.bytes }, remove: result.name === primary.name ? undefined : primary.name, skipped };
}
