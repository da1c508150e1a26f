// The pure part of the installer's conflist work: which file in the CNI config dir
// the runtime uses (as libcni/kubelet/containerd choose it), putting meshlane's entry
// into it, taking it out, and deciding how uninstall gives the primary CNI its file
// back. Bytes in, bytes out; the installer does the reading, the atomic writes and
// the logging.
//
// Validity follows libcni (ConfFiles, ConfFromBytes, ConfListFromBytes): a
// `.conflist` is a list, a `.conf` or `.json` is a single network config, and the
// runtime uses the first valid one by name in byte order. The edit follows Istio's
// cni/pkg/install/cniconfig.go minus its known failures (FACTS.md): a `.conf` is
// wrapped into a list with the conf's own `cniVersion` (Istio hard-codes 0.3.1) and
// `name` (Istio uses "k8s-pod-network", which also changes the network name libcni
// caches results under); an entry already there is replaced in place, never added
// twice; only meshlane's entries are ever removed.
import { isUtf8 } from 'node:buffer';
import {
  fromValue,
  getKey,
  jsonEqual,
  parseTree,
  setKey,
  stringifyTree,
  toValue,
  type JsonArrayNode,
  type JsonNode,
  type JsonObjectNode,
} from '../json/tree.js';

/** The plugin `type` of meshlane's entry; every entry with this type is meshlane's. */
export const MESHLANE_TYPE = 'meshlane';
/** Istio's entry: meshlane goes after it and never touches it (issue 8). */
export const ISTIO_CNI_TYPE = 'istio-cni';
/** The extensions libcni's ConfFiles is asked for by kubelet, containerd and CRI-O. */
export const CNI_CONFIG_EXTENSIONS = ['.conf', '.conflist', '.json'] as const;

export type CniConfigExtension = (typeof CNI_CONFIG_EXTENSIONS)[number];
export type CniConfigKind = 'conf' | 'conflist';

export interface ConfigFile {
  /** Base name in the CNI config dir. */
  name: string;
  bytes: Uint8Array;
}

export type ParsedCniConfig =
  | { ok: true; kind: CniConfigKind; doc: Record<string, unknown> }
  | { ok: false; reason: string };

/** A config the installer was asked to edit is not one it can edit (the caller logs it and waits). */
export class ConflistError extends Error {
  override name = 'ConflistError';
}

// ---------------------------------------------------------------------------
// File names

/** filepath.Ext: from the last dot of the name on (".conf" for a file named ".conf"). */
export function fileExtension(fileName: string): string {
  const dot = fileName.lastIndexOf('.');
  return dot === -1 ? '' : fileName.slice(dot);
}

/** How libcni reads a file of this name, or undefined when it is not a config file at all. */
export function configKindOf(fileName: string): CniConfigKind | undefined {
  switch (fileExtension(fileName)) {
    case '.conflist':
      return 'conflist';
    case '.conf':
    case '.json':
      // containerd, CRI-O and kubelet load everything that is not .conflist with ConfFromFile.
      return 'conf';
    default:
      return undefined;
  }
}

/** The name a converted single config gets: `X.conf` / `X.json` → `X.conflist`. */
export function conflistNameFor(fileName: string): string {
  if (configKindOf(fileName) === 'conflist') return fileName;
  const ext = fileExtension(fileName);
  return `${fileName.slice(0, fileName.length - ext.length)}.conflist`;
}

/**
 * The temp file the installer writes before renaming over `target`. Hidden and
 * ending in `.tmp`, so no runtime ever reads it as a config (libcni selects by
 * extension only; it does not skip hidden files).
 */
export function conflistTempName(target: string, unique: string | number): string {
  return `.${target}.meshlane-${unique}.tmp`;
}

/** Our own temp files, whatever their extension turned out to be (a crash leaves them behind). */
export function isMeshlaneArtefact(fileName: string): boolean {
  return /^\..+\.meshlane-[^/]*\.tmp$/.test(fileName);
}

/** Go's sort.Strings order: bytes of the UTF-8 names, not UTF-16 code units. */
export function compareByteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

// ---------------------------------------------------------------------------
// Parsing and validity as libcni sees it

function decode(bytes: Uint8Array): string {
  // ignoreBOM keeps a byte-order mark in the text so that it is refused, as Go's
  // encoding/json refuses it; invalid UTF-8 becomes U+FFFD, as Go does.
  return new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
}

function describeNode(node: JsonNode | undefined): string {
  if (node === undefined) return 'missing';
  switch (node.kind) {
    case 'object':
      return 'an object';
    case 'array':
      return 'an array';
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'a boolean';
    case 'null':
      return 'null';
  }
}

/**
 * Go decodes into a struct field whose name matches the key exactly or, failing
 * that, case-insensitively; later keys overwrite earlier ones. So the `type` libcni
 * sees is the last key equal to "type" ignoring case (ASCII folding is enough here).
 */
function goStructField(obj: JsonObjectNode, field: string): { key: string; node: JsonNode } | undefined {
  const lower = field.toLowerCase();
  let found: { key: string; node: JsonNode } | undefined;
  for (const [k, v] of obj.entries) if (k.toLowerCase() === lower) found = { key: k, node: v };
  return found;
}

/** A struct-field check: null is a no-op in Go; anything else must have the Go type. */
function checkStringField(obj: JsonObjectNode, field: string): string | undefined {
  const f = goStructField(obj, field);
  if (f && f.node.kind !== 'string' && f.node.kind !== 'null') return `"${f.key}" is ${describeNode(f.node)}, not a string`;
  return undefined;
}

function checkStringArray(node: JsonNode, what: string): string | undefined {
  if (node.kind === 'null') return undefined;
  if (node.kind !== 'array') return `${what} is ${describeNode(node)}, not an array of strings`;
  const bad = node.items.findIndex((v) => v.kind !== 'string' && v.kind !== 'null');
  return bad === -1 ? undefined : `${what}[${bad}] is ${describeNode(node.items[bad])}, not a string`;
}

/**
 * What libcni's ConfFromBytes refuses: JSON that does not decode into types.NetConf
 * (cniVersion/name/type strings, capabilities a map of booleans, ipam and dns
 * objects with string fields, prevResult an object), or an empty `type`.
 */
function netConfProblem(node: JsonNode): string | undefined {
  if (node.kind === 'null') return "missing 'type'";
  if (node.kind !== 'object') return `it is ${describeNode(node)}, not an object`;
  for (const f of ['cniVersion', 'name', 'type']) {
    const p = checkStringField(node, f);
    if (p) return p;
  }
  const caps = goStructField(node, 'capabilities');
  if (caps && caps.node.kind !== 'null') {
    if (caps.node.kind !== 'object') return `"${caps.key}" is ${describeNode(caps.node)}, not an object`;
    const bad = caps.node.entries.find(([, v]) => v.kind !== 'boolean' && v.kind !== 'null');
    if (bad) return `"${caps.key}"."${bad[0]}" is ${describeNode(bad[1])}, not a boolean`;
  }
  const ipam = goStructField(node, 'ipam');
  if (ipam && ipam.node.kind !== 'null') {
    if (ipam.node.kind !== 'object') return `"${ipam.key}" is ${describeNode(ipam.node)}, not an object`;
    const p = checkStringField(ipam.node, 'type');
    if (p) return `"${ipam.key}": ${p}`;
  }
  const dns = goStructField(node, 'dns');
  if (dns && dns.node.kind !== 'null') {
    if (dns.node.kind !== 'object') return `"${dns.key}" is ${describeNode(dns.node)}, not an object`;
    const p = checkStringField(dns.node, 'domain');
    if (p) return `"${dns.key}": ${p}`;
    for (const f of ['nameservers', 'search', 'options']) {
      const g = goStructField(dns.node, f);
      const q = g && checkStringArray(g.node, `"${dns.key}"."${g.key}"`);
      if (q) return q;
    }
  }
  const prev = goStructField(node, 'prevResult');
  if (prev && prev.node.kind !== 'null' && prev.node.kind !== 'object') {
    return `"${prev.key}" is ${describeNode(prev.node)}, not an object`;
  }
  const type = goStructField(node, 'type');
  if (!type || type.node.kind !== 'string' || type.node.value === '') return "missing 'type'";
  return undefined;
}

/** What libcni's ConfListFromBytes refuses (a map lookup: keys are exact here). */
function confListProblem(node: JsonNode): string | undefined {
  if (node.kind !== 'object') return `it is ${describeNode(node)}, not an object`;
  const name = getKey(node, 'name');
  if (name === undefined) return 'no name';
  if (name.kind !== 'string') return `"name" is ${describeNode(name)}, not a string`;
  const version = getKey(node, 'cniVersion');
  if (version !== undefined && version.kind !== 'string') return `"cniVersion" is ${describeNode(version)}, not a string`;
  const versions = getKey(node, 'cniVersions');
  if (versions !== undefined) {
    if (versions.kind !== 'array') return `"cniVersions" is ${describeNode(versions)}, not an array of strings`;
    const bad = versions.items.findIndex((v) => v.kind !== 'string');
    if (bad !== -1) return `"cniVersions"[${bad}] is ${describeNode(versions.items[bad])}, not a string`;
  }
  for (const flag of ['disableCheck', 'disableGC']) {
    const v = getKey(node, flag);
    // libcni 1.2 also takes the strings "true"/"false" in any case.
    if (v === undefined || v.kind === 'boolean') continue;
    if (v.kind === 'string' && /^(true|false)$/i.test(v.value)) continue;
    return `"${flag}" is ${describeNode(v)}, not a boolean`;
  }
  const plugins = getKey(node, 'plugins');
  if (plugins === undefined) return "no 'plugins' key";
  if (plugins.kind !== 'array') return `"plugins" is ${describeNode(plugins)}, not an array`;
  if (plugins.items.length === 0) return 'no plugins in list';
  for (const [i, plugin] of plugins.items.entries()) {
    const p = netConfProblem(plugin);
    if (p) return `plugin ${i}: ${p}`;
  }
  return undefined;
}

type ParsedNode = { ok: true; kind: CniConfigKind; root: JsonObjectNode } | { ok: false; reason: string };

function parseNode(fileName: string, bytes: Uint8Array): ParsedNode {
  const kind = configKindOf(fileName);
  if (kind === undefined) {
    return { ok: false, reason: `not a CNI config file name (the runtime reads only ${CNI_CONFIG_EXTENSIONS.join(', ')})` };
  }
  const tree = parseTree(decode(bytes));
  if (!tree.ok) return tree;
  const problem = kind === 'conflist' ? confListProblem(tree.node) : netConfProblem(tree.node);
  if (problem !== undefined) {
    return { ok: false, reason: kind === 'conflist' ? `not a valid network config list: ${problem}` : `not a valid network config: ${problem}` };
  }
  return { ok: true, kind, root: tree.node as JsonObjectNode };
}

/** Is this file a config the runtime would use, and what is in it. */
export function parseCniConfig(fileName: string, bytes: Uint8Array): ParsedCniConfig {
  const p = parseNode(fileName, bytes);
  if (!p.ok) return p;
  return { ok: true, kind: p.kind, doc: toValue(p.root) as Record<string, unknown> };
}

// ---------------------------------------------------------------------------
// Choosing the primary config

export interface SkippedConfig {
  name: string;
  reason: string;
}

export interface PrimaryConfig extends ConfigFile {
  kind: CniConfigKind;
  doc: Record<string, unknown>;
  /** Config files before it in byte order that the runtime skips too, with why (to log). */
  skipped: SkippedConfig[];
}

export interface CniDirScan {
  primary: PrimaryConfig | undefined;
  /** Every invalid config file (before and after the primary). */
  skipped: SkippedConfig[];
  /** Files that are not configs at all (other extensions, meshlane's temp files). */
  ignored: string[];
}

/** Classify a directory listing: the primary, the invalid configs, the rest. */
export function scanCniConfigs(files: ReadonlyArray<ConfigFile>): CniDirScan {
  const ignored: string[] = [];
  const candidates: ConfigFile[] = [];
  for (const f of files) {
    if (configKindOf(f.name) === undefined || isMeshlaneArtefact(f.name)) ignored.push(f.name);
    else candidates.push(f);
  }
  candidates.sort((a, b) => compareByteOrder(a.name, b.name));
  ignored.sort(compareByteOrder);
  const skipped: SkippedConfig[] = [];
  let primary: PrimaryConfig | undefined;
  for (const f of candidates) {
    const p = parseCniConfig(f.name, f.bytes);
    if (!p.ok) skipped.push({ name: f.name, reason: p.reason });
    else if (primary === undefined) primary = { name: f.name, bytes: f.bytes, kind: p.kind, doc: p.doc, skipped: [...skipped] };
  }
  return { primary, skipped, ignored };
}

/**
 * The config the runtime uses: the first valid `.conf`/`.conflist`/`.json` by name in
 * byte order (libcni ConfFiles + sort.Strings; invalid ones are skipped as kubelet's
 * and Istio's getDefaultCNINetwork do). Undefined when there is none yet.
 */
export function pickPrimary(files: ReadonlyArray<ConfigFile>): PrimaryConfig | undefined {
  return scanCniConfigs(files).primary;
}

// ---------------------------------------------------------------------------
// The entry

function typeOf(node: JsonNode): string | undefined {
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

function pluginsOf(root: JsonObjectNode): readonly JsonNode[] {
  const plugins = getKey(root, 'plugins');
  return plugins?.kind === 'array' ? plugins.items : [];
}

const encoder = new TextEncoder();

function render(root: JsonObjectNode): Uint8Array {
  return encoder.encode(`${stringifyTree(root)}\n`);
}

/** Wrap a single config into a list the way libcni's ConfListFromConf reads it. */
function wrapConf(conf: JsonObjectNode): JsonObjectNode {
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

export interface EntryState {
  /** The file is a valid config (else the rest is empty). */
  valid: boolean;
  kind: CniConfigKind | undefined;
  /** Positions of meshlane entries in `plugins` (empty for a single config). */
  indices: number[];
  /** Exactly one entry, with the wanted content, in a valid place: nothing to write. */
  current: boolean;
}

/** Index of the (first) meshlane entry in the file's plugins, -1 when none or not a list. */
export function entryIndex(bytes: Uint8Array, fileName = 'config.conflist'): number {
  return inspectEntry({ name: fileName, bytes }).indices[0] ?? -1;
}

/** Does the file hold a meshlane entry at all. */
export function hasEntry(bytes: Uint8Array, fileName = 'config.conflist'): boolean {
  return entryIndex(bytes, fileName) !== -1;
}

/**
 * What the installer loop needs to know about a file. With `entry`, `current` says
 * whether insertEntry would leave it as it is (present once, same content, after
 * istio-cni); without, whether exactly one entry is there.
 */
export function inspectEntry(file: ConfigFile, entry?: Readonly<Record<string, unknown>>): EntryState {
  const p = parseNode(file.name, file.bytes);
  if (!p.ok) return { valid: false, kind: undefined, indices: [], current: false };
  const indices: number[] = [];
  if (p.kind === 'conflist') {
    pluginsOf(p.root).forEach((n, i) => {
      if (typeOf(n) === MESHLANE_TYPE) indices.push(i);
    });
  }
  let current = indices.length === 1;
  if (current && entry !== undefined) {
    const plugins = pluginsOf(p.root);
    current = jsonEqual({ kind: 'array', items: [...plugins] }, { kind: 'array', items: placeEntry(plugins, entryNode(entry)) });
  }
  return { valid: true, kind: p.kind, indices, current };
}

// ---------------------------------------------------------------------------
// Giving the primary its file back

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

// ---------------------------------------------------------------------------
// One install step over a directory listing

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
