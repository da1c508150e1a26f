// meshlane's entry in the primary's plugin list: put in (after istio-cni when it
// is there; a .conf wrapped into a list with its own cniVersion and name), found,
// and taken out. Bytes in, bytes out.
import { isUtf8 } from 'node:buffer';
import { fromValue, getKey, jsonEqual, setKey, stringifyTree, type JsonNode, type JsonObjectNode } from '../../json/tree.js';
import { MESHLANE_TYPE, ISTIO_CNI_TYPE, type CniConfigKind, type ConfigFile, ConflistError, conflistNameFor } from './files.js';
import { parseNode, goStructField } from './validity.js';

export function typeOf(node: JsonNode): string | undefined {
  if (node.kind !== 'object') return undefined;
  const t = getKey(node, 'type');
  return t?.kind === 'string' ? t.value : undefined;
}

/** Our entry as it is written: the given fields minus cniVersion (libcni injects the list's). */
function entryNode(entry: Readonly<Record<string, unknown>>): JsonObjectNode {
  if (entry['type'] !== MESHLANE_TYPE) {
    throw new TypeError(`meshlane's conflist entry must have "type": "${MESHLANE_TYPE}", not ${JSON.stringify(entry['type'])}`);
  }
  const node = fromValue(entry, 'entry') as JsonObjectNode;
  return { kind: 'object', entries: node.entries.filter(([k]) => k !== 'cniVersion') };
}

function mustParse(file: ConfigFile): { kind: CniConfigKind; root: JsonObjectNode } {
  const p = parseNode(file.name, file.bytes);
  if (!p.ok) throw new ConflistError(`${file.name}: ${p.reason}`);
  return p;
}

export function pluginsOf(root: JsonObjectNode): readonly JsonNode[] {
  const plugins = getKey(root, 'plugins');
  return plugins?.kind === 'array' ? plugins.items : [];
}

const encoder = new TextEncoder();

function render(root: JsonObjectNode): Uint8Array {
  return encoder.encode(`${stringifyTree(root)}\n`);
}

/** Wrap a single config into a list the way libcni's ConfListFromConf reads it. */
export function wrapConf(conf: JsonObjectNode): JsonObjectNode {
  const version = goStructField(conf, 'cniVersion');
  const name = goStructField(conf, 'name');
  const entries: Array<readonly [string, JsonNode]> = [];
  // The list keeps the conf's version (absent stays absent: "" and absent mean the
  // same to libcni) and the conf's network name ("" when it had none, as libcni does).
  if (version && version.node.kind === 'string') entries.push(['cniVersion', version.node]);
  entries.push(['name', name && name.node.kind === 'string' ? name.node : { kind: 'string', value: '' }]);
  // The plugin keeps everything but its cniVersion, as Istio's golden does; libcni
  // injects the list's name and cniVersion into each plugin when it runs it.
  const plugin: JsonObjectNode = { kind: 'object', entries: conf.entries.filter(([k]) => k.toLowerCase() !== 'cniversion') };
  entries.push(['plugins', { kind: 'array', items: [plugin] }]);
  return { kind: 'object', entries };
}

/** The plugin list with our entry placed: see insertEntry. */
function placeEntry(plugins: readonly JsonNode[], entry: JsonObjectNode): JsonNode[] {
  let lastIstio = -1;
  plugins.forEach((p, i) => {
    if (typeOf(p) === ISTIO_CNI_TYPE) lastIstio = i;
  });
  const keepAt = plugins.findIndex((p, i) => i > lastIstio && typeOf(p) === MESHLANE_TYPE);
  const out: JsonNode[] = [];
  plugins.forEach((p, i) => {
    if (i === keepAt) out.push(entry);
    else if (typeOf(p) !== MESHLANE_TYPE) out.push(p);
  });
  if (keepAt === -1) out.push(entry);
  return out;
}

export interface EditResult extends ConfigFile {
  /** False when the file already was what it would become: nothing to write. */
  changed: boolean;
}

/**
 * Put meshlane's entry into the primary config.
 *
 * - `.conflist`: an existing meshlane entry after every istio-cni entry is replaced
 *   in place; other meshlane entries (duplicates, or one before istio-cni) are
 *   dropped; with none left, the entry is appended at the end (so after istio-cni).
 *   Nothing else changes: other plugins, top-level fields, `cniVersion`.
 * - `.conf`/`.json`: becomes `{cniVersion, name, plugins: [conf minus cniVersion,
 *   entry]}` named `X.conflist`; the caller writes that and removes the old file.
 *
 * Unchanged input gives `changed: false` and the input bytes. Throws ConflistError
 * when the file is not a valid config, is not UTF-8 (a rewrite would alter it), or
 * holds nothing but meshlane.
 */
export function insertEntry(primary: ConfigFile, entry: Readonly<Record<string, unknown>>): EditResult {
  const ours = entryNode(entry);
  const { kind, root } = mustParse(primary);
  const list = kind === 'conf' ? wrapConf(root) : root;
  const plugins = pluginsOf(list);
  if (plugins.every((p) => typeOf(p) === MESHLANE_TYPE)) {
    throw new ConflistError(`${primary.name}: holds no network plugin but meshlane's; it is not a primary network config`);
  }
  const placed = placeEntry(plugins, ours);
  if (kind === 'conflist' && jsonEqual({ kind: 'array', items: [...plugins] }, { kind: 'array', items: placed })) {
    return { name: primary.name, bytes: primary.bytes, changed: false };
  }
  if (!isUtf8(primary.bytes)) {
    throw new ConflistError(`${primary.name}: not valid UTF-8; meshlane will not rewrite it`);
  }
  const out = setKey(list, 'plugins', { kind: 'array', items: placed });
  return { name: conflistNameFor(primary.name), bytes: render(out), changed: true };
}

/** Remove every meshlane entry; the file keeps its name. Throws when nothing but meshlane would be left. */
export function removeEntry(name: string, bytes: Uint8Array): EditResult {
  const { kind, root } = mustParse({ name, bytes });
  if (kind === 'conf') return { name, bytes, changed: false };
  const plugins = pluginsOf(root);
  const kept = plugins.filter((p) => typeOf(p) !== MESHLANE_TYPE);
  if (kept.length === plugins.length) return { name, bytes, changed: false };
  if (kept.length === 0) throw new ConflistError(`${name}: holds nothing but meshlane's entry; removing it would leave an invalid list`);
  if (!isUtf8(bytes)) throw new ConflistError(`${name}: not valid UTF-8; meshlane will not rewrite it`);
  return { name, bytes: render(setKey(root, 'plugins', { kind: 'array', items: kept })), changed: true };
}

/** Positions of meshlane's entries in the file's plugins (empty for a single config or an invalid file). */
export function entryIndices(bytes: Uint8Array, fileName = 'config.conflist'): number[] {
  const p = parseNode(fileName, bytes);
  if (!p.ok || p.kind !== 'conflist') return [];
  const indices: number[] = [];
  pluginsOf(p.root).forEach((n, i) => {
    if (typeOf(n) === MESHLANE_TYPE) indices.push(i);
  });
  return indices;
}

/** Index of the (first) meshlane entry in the file's plugins, -1 when none or not a list. */
export function entryIndex(bytes: Uint8Array, fileName = 'config.conflist'): number {
  return entryIndices(bytes, fileName)[0] ?? -1;
}

/** Does the file hold a meshlane entry at all. */
export function hasEntry(bytes: Uint8Array, fileName = 'config.conflist'): boolean {
  return entryIndex(bytes, fileName) !== -1;
}
