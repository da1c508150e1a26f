// The protobuf wire format, as much of it as the CRI messages meshlane reads
// need: varints, length-delimited fields (strings, nested messages, map
// entries) and skipping the rest. Pure: bytes in, fields out.
//
// The runtime's answers describe pods whoever deploys them wrote (names,
// annotations): every length is checked against the bytes there are, and a
// malformed message is a WireError, never a read past the end.

export class WireError extends Error {
  override name = 'WireError';
}

export const WireType = { varint: 0, fixed64: 1, bytes: 2, fixed32: 5 } as const;

export interface Field {
  field: number;
  wire: number;
  /** varint and fixed values */
  num: bigint;
  /** length-delimited values (a view into the input) */
  bytes: Uint8Array;
}

const EMPTY = new Uint8Array(0);

function readVarint(buf: Uint8Array, pos: number): { value: bigint; next: number } {
  let value = 0n;
  let shift = 0n;
  for (let i = pos; i < buf.length && i < pos + 10; i++) {
    const b = buf[i] as number;
    value |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return { value: value & 0xffffffffffffffffn, next: i + 1 };
    shift += 7n;
  }
  throw new WireError(`a varint at byte ${pos} runs past the end of the message or over 10 bytes`);
}

/** Every field of one message, in order (repeated fields appear once per value). */
export function readFields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const tag = readVarint(buf, pos);
    pos = tag.next;
    const field = Number(tag.value >> 3n);
    const wire = Number(tag.value & 7n);
    if (field === 0) throw new WireError(`field number 0 at byte ${pos}`);
    switch (wire) {
      case WireType.varint: {
        const v = readVarint(buf, pos);
        out.push({ field, wire, num: v.value, bytes: EMPTY });
        pos = v.next;
        break;
      }
      case WireType.fixed64:
      case WireType.fixed32: {
        const n = wire === WireType.fixed64 ? 8 : 4;
        if (pos + n > buf.length) throw new WireError(`a fixed${n * 8} field ${field} runs past the end of the message`);
        let num = 0n;
        for (let i = n - 1; i >= 0; i--) num = (num << 8n) | BigInt(buf[pos + i] as number);
        out.push({ field, wire, num, bytes: EMPTY });
        pos += n;
        break;
      }
      case WireType.bytes: {
        const len = readVarint(buf, pos);
        pos = len.next;
        if (len.value > BigInt(buf.length - pos)) throw new WireError(`field ${field} claims ${len.value} bytes, ${buf.length - pos} are left`);
        const n = Number(len.value);
        out.push({ field, wire, num: 0n, bytes: buf.subarray(pos, pos + n) });
        pos += n;
        break;
      }
      default:
        throw new WireError(`field ${field} has wire type ${wire}, which proto3 does not use`);
    }
  }
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function str(f: Field): string {
  if (f.wire !== WireType.bytes) throw new WireError(`field ${f.field} should be a string, has wire type ${f.wire}`);
  try {
    return utf8.decode(f.bytes);
  } catch (err) {
    if (!(err instanceof TypeError)) throw err; // what a fatal TextDecoder throws for bad bytes
    throw new WireError(`field ${f.field} is not valid UTF-8`);
  }
}

export function msg(f: Field): Uint8Array {
  if (f.wire !== WireType.bytes) throw new WireError(`field ${f.field} should be a message, has wire type ${f.wire}`);
  return f.bytes;
}

export function uint(f: Field): bigint {
  if (f.wire !== WireType.varint) throw new WireError(`field ${f.field} should be a varint, has wire type ${f.wire}`);
  return f.num;
}

/** The last value of a singular field (proto3: the last one wins), or undefined. */
export function last(fields: readonly Field[], field: number): Field | undefined {
  for (let i = fields.length - 1; i >= 0; i--) if ((fields[i] as Field).field === field) return fields[i];
  return undefined;
}

/** A map<string, string> field: entries are messages {1: key, 2: value}; null prototype, later keys win. */
export function stringMapOf(fields: readonly Field[], field: number): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const f of fields) {
    if (f.field !== field) continue;
    const entry = readFields(msg(f));
    const k = last(entry, 1);
    const v = last(entry, 2);
    out[k ? str(k) : ''] = v ? str(v) : '';
  }
  return out;
}

// Encoding: only what requests need (strings, bools, varints and nested messages).

function varint(n: bigint): number[] {
  const out: number[] = [];
  let v = n & 0xffffffffffffffffn;
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return out;
}

export type EncField =
  | { field: number; string: string }
  | { field: number; varint: bigint | number | boolean }
  | { field: number; message: Uint8Array };

export function encode(fields: readonly EncField[]): Uint8Array {
  const parts: number[] = [];
  for (const f of fields) {
    if ('varint' in f) {
      const v = typeof f.varint === 'boolean' ? (f.varint ? 1n : 0n) : BigInt(f.varint);
      parts.push(...varint(BigInt(f.field << 3) | BigInt(WireType.varint)), ...varint(v));
    } else {
      const body = 'string' in f ? Buffer.from(f.string, 'utf8') : f.message;
      parts.push(...varint(BigInt(f.field << 3) | BigInt(WireType.bytes)), ...varint(BigInt(body.length)), ...body);
    }
  }
  return Uint8Array.from(parts);
}
