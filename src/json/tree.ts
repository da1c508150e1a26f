// A JSON tree that keeps what JSON.parse loses and a rewrite of somebody else's
// CNI config must not change: key order (JS objects put integer-like keys first),
// number literals as written ("1500", "1e3", 2^64 stay as they are), duplicate keys
// (kept; the last one wins for every reader, as in Go's encoding/json) and a
// "__proto__" key. Syntax is checked first by the scanner (scan.ts), so the
// builder below only ever sees valid JSON nested at most MAX_JSON_DEPTH deep.
import { findJsonProblem, formatJsonProblem, NUMBER_RE } from './scan.js';

export type JsonNode =
  | { readonly kind: 'object'; readonly entries: ReadonlyArray<readonly [string, JsonNode]> }
  | { readonly kind: 'array'; readonly items: readonly JsonNode[] }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'number'; readonly raw: string }
  | { readonly kind: 'boolean'; readonly value: boolean }
  | { readonly kind: 'null' };

export type JsonObjectNode = Extract<JsonNode, { kind: 'object' }>;
export type JsonArrayNode = Extract<JsonNode, { kind: 'array' }>;

export type ParsedTree = { ok: true; node: JsonNode } | { ok: false; reason: string };

/** Parse strict JSON (what Go's encoding/json and JSON.parse accept) into a tree. */
export function parseTree(text: string): ParsedTree {
  const problem = findJsonProblem(text);
  if (problem) return { ok: false, reason: `invalid JSON: ${formatJsonProblem(problem)}` };
  const builder = new Builder(text);
  const node = builder.value();
  return { ok: true, node };
}

class Builder {
  private i = 0;
  constructor(private readonly text: string) {}

  private ws(): void {
    const t = this.text;
    while (this.i < t.length) {
      const c = t.charCodeAt(this.i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.i++;
      else break;
    }
  }

  value(): JsonNode {
    this.ws();
    const t = this.text;
    const ch = t[this.i];
    if (ch === '{') {
      this.i++;
      const entries: Array<readonly [string, JsonNode]> = [];
      this.ws();
      if (t[this.i] === '}') {
        this.i++;
        return { kind: 'object', entries };
      }
      for (;;) {
        this.ws();
        const key = this.string();
        this.ws();
        this.i++; // ':'
        entries.push([key, this.value()]);
        this.ws();
        if (t[this.i++] === '}') return { kind: 'object', entries };
      }
    }
    if (ch === '[') {
      this.i++;
      const items: JsonNode[] = [];
      this.ws();
      if (t[this.i] === ']') {
        this.i++;
        return { kind: 'array', items };
      }
      for (;;) {
        items.push(this.value());
        this.ws();
        if (t[this.i++] === ']') return { kind: 'array', items };
      }
    }
    if (ch === '"') return { kind: 'string', value: this.string() };
    if (t.startsWith('true', this.i)) {
      this.i += 4;
      return { kind: 'boolean', value: true };
    }
    if (t.startsWith('false', this.i)) {
      this.i += 5;
      return { kind: 'boolean', value: false };
    }
    if (t.startsWith('null', this.i)) {
      this.i += 4;
      return { kind: 'null' };
    }
    NUMBER_RE.lastIndex = this.i;
    const raw = NUMBER_RE.exec(t)?.[0];
    if (raw === undefined) throw new Error(`json tree: no value at ${this.i} after a successful syntax check`);
    this.i += raw.length;
    return { kind: 'number', raw };
  }

  private string(): string {
    const t = this.text;
    const start = this.i;
    let j = start + 1;
    while (t.charCodeAt(j) !== 0x22) j += t.charCodeAt(j) === 0x5c ? 2 : 1;
    this.i = j + 1;
    return JSON.parse(t.slice(start, j + 1)) as string;
  }
}

/** The tree of a plain value (our own entry). Throws on what JSON cannot hold. */
export function fromValue(value: unknown, where = 'value'): JsonNode {
  if (value === null) return { kind: 'null' };
  switch (typeof value) {
    case 'string':
      return { kind: 'string', value };
    case 'boolean':
      return { kind: 'boolean', value };
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${where} is ${value}, which JSON cannot hold`);
      return { kind: 'number', raw: JSON.stringify(value) };
    case 'object':
      if (Array.isArray(value)) return { kind: 'array', items: value.map((v, i) => fromValue(v, `${where}[${i}]`)) };
      return {
        kind: 'object',
        entries: Object.entries(value as Record<string, unknown>)
          .filter(([, v]) => v !== undefined)
          .map(([k, v]) => [k, fromValue(v, `${where}.${k}`)] as const),
      };
    default:
      throw new TypeError(`${where} is ${typeof value}, which JSON cannot hold`);
  }
}

/** The plain value of a tree, as JSON.parse would give it (last duplicate key wins). */
export function toValue(node: JsonNode): unknown {
  switch (node.kind) {
    case 'object':
      // Object.fromEntries defines own properties, so a "__proto__" key stays data.
      return Object.fromEntries(node.entries.map(([k, v]) => [k, toValue(v)]));
    case 'array':
      return node.items.map(toValue);
    case 'string':
    case 'boolean':
      return node.value;
    case 'number':
      return Number(node.raw);
    case 'null':
      return null;
  }
}

/** The value of `key` as every JSON reader sees it: the last occurrence. */
export function getKey(obj: JsonObjectNode, key: string): JsonNode | undefined {
  for (let i = obj.entries.length - 1; i >= 0; i--) {
    const e = obj.entries[i];
    if (e && e[0] === key) return e[1];
  }
  return undefined;
}

/** A copy of `obj` with the last `key` set to `value` (appended when absent). */
export function setKey(obj: JsonObjectNode, key: string, value: JsonNode): JsonObjectNode {
  let last = -1;
  obj.entries.forEach(([k], i) => {
    if (k === key) last = i;
  });
  if (last === -1) return { kind: 'object', entries: [...obj.entries, [key, value]] };
  return { kind: 'object', entries: obj.entries.map((e, i) => (i === last ? [key, value] : e)) };
}

/** The effective key/value map of an object (last duplicate wins). */
function effective(obj: JsonObjectNode): Map<string, JsonNode> {
  return new Map(obj.entries.map(([k, v]) => [k, v]));
}

/**
 * Equal as JSON data: objects by their effective keys in any order, arrays in order,
 * numbers by literal or by value (Go reads them as float64), strings exactly.
 */
export function jsonEqual(a: JsonNode, b: JsonNode): boolean {
  if (a.kind !== b.kind) return false;
  switch (a.kind) {
    case 'object': {
      const ma = effective(a);
      const mb = effective(b as JsonObjectNode);
      if (ma.size !== mb.size) return false;
      for (const [k, va] of ma) {
        const vb = mb.get(k);
        if (vb === undefined || !jsonEqual(va, vb)) return false;
      }
      return true;
    }
    case 'array': {
      const ib = (b as JsonArrayNode).items;
      return a.items.length === ib.length && a.items.every((v, i) => jsonEqual(v, ib[i] as JsonNode));
    }
    case 'number': {
      const rb = (b as Extract<JsonNode, { kind: 'number' }>).raw;
      return a.raw === rb || Number(a.raw) === Number(rb);
    }
    case 'string':
    case 'boolean':
      return a.value === (b as typeof a).value;
    case 'null':
      return true;
  }
}

/** Serialize like JSON.stringify(v, null, 2), keeping key order, duplicates and number literals. */
export function stringifyTree(node: JsonNode, indent = ''): string {
  switch (node.kind) {
    case 'object': {
      if (node.entries.length === 0) return '{}';
      const inner = `${indent}  `;
      const parts = node.entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${stringifyTree(v, inner)}`);
      return `{\n${parts.join(',\n')}\n${indent}}`;
    }
    case 'array': {
      if (node.items.length === 0) return '[]';
      const inner = `${indent}  `;
      return `[\n${node.items.map((v) => `${inner}${stringifyTree(v, inner)}`).join(',\n')}\n${indent}]`;
    }
    case 'string':
      return JSON.stringify(node.value);
    case 'number':
      return node.raw;
    case 'boolean':
      return node.value ? 'true' : 'false';
    case 'null':
      return 'null';
  }
}
