// Fixed-layout little-endian struct codecs, described once as a field list.
// Offsets are computed from the list (no implicit padding: the C header names
// every pad), and a test checks them against the BTF that clang put in the object.

export type Scalar = 'u8' | 'u16' | 'u32' | 'u64' | 'be16';

export type FieldType =
  | Scalar
  | { bytes: number }
  | { array: Scalar; length: number }
  | { structArray: StructCodec<object>; length: number };

export interface FieldSpec {
  name: string;
  type: FieldType;
}

export interface FieldLayout {
  name: string;
  offset: number;
  size: number;
}

const SCALAR_SIZE: Record<Scalar, number> = { u8: 1, u16: 2, u32: 4, u64: 8, be16: 2 };

function sizeOf(t: FieldType): number {
  if (typeof t === 'string') return SCALAR_SIZE[t];
  if ('bytes' in t) return t.bytes;
  if ('array' in t) return SCALAR_SIZE[t.array] * t.length;
  return t.structArray.size * t.length;
}

type ScalarValue<S extends Scalar> = S extends 'u64' ? bigint : number;

function readScalar(view: DataView, off: number, t: Scalar): number | bigint {
  switch (t) {
    case 'u8':
      return view.getUint8(off);
    case 'u16':
      return view.getUint16(off, true);
    case 'u32':
      return view.getUint32(off, true);
    case 'u64':
      return view.getBigUint64(off, true);
    case 'be16':
      return view.getUint16(off, false);
  }
}

function writeScalar(view: DataView, off: number, t: Scalar, v: unknown, field: string): void {
  if (t === 'u64') {
    const b = typeof v === 'bigint' ? v : BigInt(Number(v ?? 0));
    if (b < 0n || b > 0xffffffffffffffffn) throw new RangeError(`${field}: ${b} does not fit in u64`);
    view.setBigUint64(off, b, true);
    return;
  }
  const n = Number(v ?? 0);
  const max = t === 'u8' ? 0xff : t === 'u32' ? 0xffffffff : 0xffff;
  if (!Number.isInteger(n) || n < 0 || n > max) throw new RangeError(`${field}: ${String(v)} does not fit in ${t}`);
  if (t === 'u8') view.setUint8(off, n);
  else if (t === 'u16') view.setUint16(off, n, true);
  else if (t === 'u32') view.setUint32(off, n, true);
  else view.setUint16(off, n, false);
}

export interface StructCodec<T extends object> {
  readonly cName: string;
  readonly size: number;
  readonly fields: readonly FieldLayout[];
  encode(value: T): Uint8Array;
  encodeInto(value: T, view: DataView, base: number): void;
  decode(bytes: Uint8Array, base?: number): T;
}

/**
 * A codec for `struct cName`. Values are plain objects: scalars as number
 * (u64 as bigint), `bytes` as Uint8Array, arrays as arrays (shorter arrays are
 * zero-filled; longer ones are an error: a limit is a rejection, never a truncation).
 */
export function defineStruct<T extends object>(cName: string, specs: readonly FieldSpec[], expectedSize: number): StructCodec<T> {
  const fields: (FieldLayout & { type: FieldType })[] = [];
  let offset = 0;
  for (const s of specs) {
    const size = sizeOf(s.type);
    fields.push({ name: s.name, offset, size, type: s.type });
    offset += size;
  }
  if (offset !== expectedSize) throw new Error(`struct ${cName}: fields add up to ${offset} bytes, expected ${expectedSize}`);

  const encodeInto = (value: T, view: DataView, base: number): void => {
    const rec = value as Record<string, unknown>;
    for (const f of fields) {
      const v = rec[f.name];
      const at = base + f.offset;
      const t = f.type;
      if (typeof t === 'string') {
        writeScalar(view, at, t, v, `${cName}.${f.name}`);
      } else if ('bytes' in t) {
        const b = (v as Uint8Array | undefined) ?? new Uint8Array(t.bytes);
        if (b.length > t.bytes) throw new RangeError(`${cName}.${f.name}: ${b.length} bytes, at most ${t.bytes}`);
        new Uint8Array(view.buffer, view.byteOffset + at, t.bytes).set(b);
      } else if ('array' in t) {
        const list = (v as readonly unknown[] | undefined) ?? [];
        if (list.length > t.length) throw new RangeError(`${cName}.${f.name}: ${list.length} entries, at most ${t.length}`);
        list.forEach((x, i) => writeScalar(view, at + i * SCALAR_SIZE[t.array], t.array, x, `${cName}.${f.name}[${i}]`));
      } else {
        const list = (v as readonly object[] | undefined) ?? [];
        if (list.length > t.length) throw new RangeError(`${cName}.${f.name}: ${list.length} entries, at most ${t.length}`);
        list.forEach((x, i) => t.structArray.encodeInto(x, view, at + i * t.structArray.size));
      }
    }
  };

  return {
    cName,
    size: expectedSize,
    fields: fields.map(({ name, offset: o, size }) => ({ name, offset: o, size })),
    encodeInto,
    encode(value) {
      const out = new Uint8Array(expectedSize);
      encodeInto(value, new DataView(out.buffer), 0);
      return out;
    },
    decode(bytes, base = 0) {
      if (bytes.length - base < expectedSize) throw new RangeError(`struct ${cName}: ${bytes.length - base} bytes, need ${expectedSize}`);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const out: Record<string, unknown> = {};
      for (const f of fields) {
        const at = base + f.offset;
        const t = f.type;
        if (typeof t === 'string') out[f.name] = readScalar(view, at, t);
        else if ('bytes' in t) out[f.name] = bytes.slice(at, at + t.bytes);
        else if ('array' in t) out[f.name] = Array.from({ length: t.length }, (_, i) => readScalar(view, at + i * SCALAR_SIZE[t.array], t.array));
        else out[f.name] = Array.from({ length: t.length }, (_, i) => t.structArray.decode(bytes, at + i * t.structArray.size));
      }
      return out as T;
    },
  };
}

export type { ScalarValue };
