// Giving the primary CNI its file back at uninstall: its original bytes when only
// meshlane's entry changed in it, else the current file minus meshlane's entry.
import { jsonEqual, setKey, type JsonNode } from '../../json/tree.js';
import { MESHLANE_TYPE, type ConfigFile } from './files.js';
import { hasEntry, pluginsOf, removeEntry, typeOf, wrapConf } from './chain.js';
import { parseNode } from './validity.js';

/** The list a config amounts to without meshlane: a conf is wrapped first. Undefined when invalid. */
function baseList(file: ConfigFile): JsonNode | undefined {
  const p = parseNode(file.name, file.bytes);
  if (!p.ok) return undefined;
  const list = p.kind === 'conf' ? wrapConf(p.root) : p.root;
  return setKey(list, 'plugins', { kind: 'array', items: pluginsOf(list).filter((n) => typeOf(n) !== MESHLANE_TYPE) });
}

/**
 * True when `a` and `b` are the same primary config apart from meshlane's entries and
 * a `.conf` → `.conflist` conversion: nobody but meshlane changed anything between
 * them. False when either is invalid.
 */
export function sameApartFromEntry(a: ConfigFile, b: ConfigFile): boolean {
  const la = baseList(a);
  const lb = baseList(b);
  return la !== undefined && lb !== undefined && jsonEqual(la, lb);
}

/**
 * What to keep in the state dir as "the primary before meshlane" when the installer
 * is about to write `primary` (the file as it is now). Keeps `saved` while the file
 * is still that original apart from our entry, so uninstall can put back its exact
 * bytes; replaces it when the primary CNI has written a new file since (the newer
 * file is what uninstall must give back). A file that already holds an entry but has
 * no saved original is kept without the entry (its exact formatting is lost).
 */
export function originalToKeep(saved: ConfigFile | undefined, primary: ConfigFile): ConfigFile {
  if (saved !== undefined && sameApartFromEntry(saved, primary)) return saved;
  if (!hasEntry(primary.bytes, primary.name)) return { name: primary.name, bytes: primary.bytes };
  const stripped = removeEntry(primary.name, primary.bytes);
  return { name: stripped.name, bytes: stripped.bytes };
}

export type RestorePlan =
  /** Write `write` (the saved original, exact bytes), then remove `remove` if set (our converted .conflist). */
  | { action: 'restore'; write: ConfigFile; remove: string | undefined; reason: string }
  /** The primary CNI has rewritten the file since: keep its content, only take our entry out. */
  | { action: 'strip'; write: ConfigFile; remove: undefined; reason: string }
  /** Our converted .conflist is a stale copy beside the primary's re-created .conf: delete it. */
  | { action: 'delete'; write: undefined; remove: string; reason: string }
  | { action: 'none'; write: undefined; remove: undefined; reason: string };

export interface RestoreInput {
  /** The primary before meshlane touched it (originalToKeep), from the state dir. */
  original: ConfigFile;
  /** The file meshlane manages now: `original.name`, or the `.conflist` it was converted to; undefined when gone. */
  current: ConfigFile | undefined;
  /**
   * After a conversion, what is at `original.name` now (the primary CNI may have
   * written its `.conf` again); undefined when nothing is there.
   */
  atOriginalName?: Uint8Array | undefined;
}

/** How uninstall gives the primary CNI its file back. */
export function planRestore(input: RestoreInput): RestorePlan {
  const { original, current } = input;
  const converted = current !== undefined && current.name !== original.name;
  if (current === undefined) return { action: 'none', write: undefined, remove: undefined, reason: 'the file meshlane edited is gone' };
  if (!hasEntry(current.bytes, current.name)) {
    return { action: 'none', write: undefined, remove: undefined, reason: `${current.name} holds no meshlane entry` };
  }
  if (converted && input.atOriginalName !== undefined) {
    const now: ConfigFile = { name: original.name, bytes: input.atOriginalName };
    if (sameApartFromEntry(original, current) || sameApartFromEntry(now, current)) {
      return { action: 'delete', write: undefined, remove: current.name, reason: `${original.name} is back; ${current.name} is meshlane's stale copy of it` };
    }
  } else if (sameApartFromEntry(original, current)) {
    return {
      action: 'restore',
      write: { name: original.name, bytes: original.bytes },
      remove: converted ? current.name : undefined,
      reason: converted ? `${current.name} is ${original.name} as meshlane converted it` : `${current.name} is unchanged apart from meshlane's entry`,
    };
  }
  const stripped = removeEntry(current.name, current.bytes);
  return {
    action: 'strip',
    write: { name: stripped.name, bytes: stripped.bytes },
    remove: undefined,
    reason: `${current.name} was rewritten since meshlane saved the original; only meshlane's entry is removed`,
  };
}
