// Which files are configs libcni accepts (ConfFromBytes, ConfListFromBytes), read
// as a lossless tree so an edit changes nothing else of somebody else's file.
import { isUtf8 } from 'node:buffer';
import { getKey, parseTree, toValue, type JsonNode, type JsonObjectNode } from '../../json/tree.js';
import { CNI_CONFIG_EXTENSIONS, type CniConfigKind, type ParsedCniConfig, configKindOf } from './files.js';

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
export function goStructField(obj: JsonObjectNode, field: string): { key: string; node: JsonNode } | undefined {
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

export type ParsedNode = { ok: true; kind: CniConfigKind; root: JsonObjectNode } | { ok: false; reason: string };

export function parseNode(fileName: string, bytes: Uint8Array): ParsedNode {
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
