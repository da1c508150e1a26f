// The TypeScript mirror of bpf/meshlane.h agrees with the C side:
// - every ml_* struct in the BTF clang put in dist/bpf/meshlane.o that crosses to
//   user space (a map's key or value, or defined in the contract header
//   bpf/meshlane.h) has a codec in src/bpf/layout.ts with its size, member
//   offsets and sizes; a new such struct without a codec fails here;
// - counter ids, flags and capacities against a host program compiled from the header.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import * as L from '../../src/bpf/layout.js';
import type { StructCodec } from '../../src/bpf/codec.js';
import { errorMessage } from '../../src/describe-error.js';
import { distBpfObject, repoRoot } from '../helpers/paths.js';

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
  vars?: { type_id: number }[];
}

function loadBtf(): Map<number, BtfType> {
  let out: string;
  try {
    out = execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', distBpfObject], { encoding: 'utf8' });
  } catch (err) {
    throw new Error(`cannot read the BTF of ${distBpfObject} (run 'npm run build'; needs bpftool): ${errorMessage(err)}`);
  }
  const types = (JSON.parse(out) as { types: BtfType[] }).types;
  return new Map(types.map((x) => [x.id, x]));
}

function sizeOfType(btf: Map<number, BtfType>, id: number): number {
  const ty = btf.get(id);
  if (!ty) throw new Error(`BTF type ${id} missing`);
  switch (ty.kind) {
    case 'TYPEDEF':
    case 'CONST':
    case 'VOLATILE':
      return sizeOfType(btf, ty.type_id ?? 0);
    case 'ARRAY':
      return (ty.nr_elems ?? 0) * sizeOfType(btf, ty.type_id ?? 0);
    default:
      if (ty.size === undefined) throw new Error(`BTF type ${ty.kind} ${ty.name} has no size`);
      return ty.size;
  }
}

function isStructCodec(v: unknown): v is StructCodec<object> {
  if (typeof v !== 'object' || v === null) return false;
  const c = v as Partial<Record<keyof StructCodec<object>, unknown>>;
  return typeof c.cName === 'string' && typeof c.size === 'number' && Array.isArray(c.fields) && typeof c.encode === 'function' && typeof c.decode === 'function';
}

/** Every struct codec src/bpf/layout.ts exports, by the C struct it mirrors. */
const codecs = new Map<string, StructCodec<object>>((Object.values(L) as unknown[]).filter(isStructCodec).map((c) => [c.cName, c]));

/** The struct and union names behind a type, through typedefs, qualifiers, arrays and pointers. */
function structsIn(btf: Map<number, BtfType>, id: number, out: Set<string>): void {
  const ty = btf.get(id);
  if (!ty) return;
  switch (ty.kind) {
    case 'STRUCT':
    case 'UNION':
      if (ty.name !== '' && out.has(ty.name)) return;
      if (ty.name !== '') out.add(ty.name);
      for (const m of ty.members ?? []) structsIn(btf, m.type_id, out);
      return;
    case 'TYPEDEF':
    case 'CONST':
    case 'VOLATILE':
    case 'PTR':
    case 'ARRAY':
      structsIn(btf, ty.type_id ?? 0, out);
      return;
    default:
      return;
  }
}

/** The structs that maps hold as keys or values (from the `.maps` section: `__type(key, T)` is a member `key` of type T *). */
function mapStructs(btf: Map<number, BtfType>): Set<string> {
  const out = new Set<string>();
  const maps = [...btf.values()].find((x) => x.kind === 'DATASEC' && x.name === '.maps');
  for (const v of maps?.vars ?? []) {
    const def = btf.get(btf.get(v.type_id)?.type_id ?? 0);
    for (const m of def?.members ?? []) if (m.name === 'key' || m.name === 'value') structsIn(btf, m.type_id, out);
  }
  return out;
}

/** The structs the contract header defines (`struct ml_x {` at the start of a line). */
function headerStructs(text: string = readFileSync(join(repoRoot, 'bpf', 'meshlane.h'), 'utf8')): Set<string> {
  return new Set([...text.matchAll(/^struct\s+(ml_\w+)\s*\{/gm)].map((m) => m[1] as string));
}

t.test('struct layouts match the object BTF', async (t) => {
  const btf = loadBtf();
  const inBtf = new Map([...btf.values()].filter((x) => (x.kind === 'STRUCT' || x.kind === 'UNION') && x.name.startsWith('ml_')).map((x) => [x.name, x]));
  const inMaps = mapStructs(btf);
  const inHeader = headerStructs();
  t.ok(inMaps.size > 0 && inHeader.size > 0, `structs found: ${inMaps.size} in maps, ${inHeader.size} in bpf/meshlane.h`);
  for (const name of inHeader) {
    if (!inBtf.has(name)) t.fail(`struct ${name} of bpf/meshlane.h is not in the BTF of ${distBpfObject}: its layout cannot be checked (use it in a map, or move it out of the contract header)`);
  }
  for (const [name, st] of inBtf) {
    const crosses = inMaps.has(name) || inHeader.has(name);
    const codec = codecs.get(name);
    if (!codec) {
      if (crosses) t.fail(`struct ${name} (${inMaps.has(name) ? 'in a map' : 'in bpf/meshlane.h'}) has no codec in src/bpf/layout.ts`);
      else t.pass(`struct ${name}: kernel-only (in no map and not in bpf/meshlane.h), no codec needed`);
      continue;
    }
    t.equal(st.size, codec.size, `sizeof(struct ${name})`);
    const members = st.members ?? [];
    t.same(
      members.map((m) => ({ name: m.name, offset: m.bits_offset / 8, size: sizeOfType(btf, m.type_id) })),
      codec.fields.map((f) => ({ name: f.name, offset: f.offset, size: f.size })),
      `members of struct ${name}`,
    );
  }
  for (const name of codecs.keys()) {
    if (!inBtf.has(name)) t.fail(`struct ${name} is not in the BTF of ${distBpfObject}`);
  }
  t.ok(codecs.size >= 8, `${codecs.size} codecs found in src/bpf/layout.ts`);
});

t.test('the check finds a new struct of a map or of the header, which has no codec', async (t) => {
  // A map `ml_new_map` whose value is struct ml_new, inside a typedef, with a nested struct ml_inner.
  const btf = new Map<number, BtfType>(
    [
      { id: 1, kind: 'INT', name: 'unsigned int', size: 4 },
      { id: 2, kind: 'STRUCT', name: 'ml_inner', size: 4, members: [{ name: 'x', type_id: 1, bits_offset: 0 }] },
      { id: 3, kind: 'STRUCT', name: 'ml_new', size: 8, members: [{ name: 'a', type_id: 1, bits_offset: 0 }, { name: 'in', type_id: 2, bits_offset: 32 }] },
      { id: 4, kind: 'TYPEDEF', name: 'ml_new_t', type_id: 3 },
      { id: 5, kind: 'PTR', name: '', type_id: 4 },
      { id: 6, kind: 'PTR', name: '', type_id: 1 },
      { id: 7, kind: 'STRUCT', name: '', size: 16, members: [{ name: 'key', type_id: 6, bits_offset: 0 }, { name: 'value', type_id: 5, bits_offset: 64 }] },
      { id: 8, kind: 'VAR', name: 'ml_new_map', type_id: 7 },
      { id: 9, kind: 'DATASEC', name: '.maps', vars: [{ type_id: 8 }] },
    ].map((x) => [x.id, x]),
  );
  t.same([...mapStructs(btf)].sort(), ['ml_inner', 'ml_new']);
  t.same([...headerStructs('/* struct ml_no {} */\nstruct ml_hdr {\n\t__u32 a;\n};\nstruct  ml_two{\n};\n')], ['ml_hdr', 'ml_two']);
  t.notOk(codecs.has('ml_new') || codecs.has('ml_hdr'), 'so the layout test fails for them');
});

t.test('counter ids, flags and capacities match the header', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshlane-probe-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const constants: Record<string, number> = {
    ML_MAX_PODS: L.ML_MAX_PODS,
    ML_MAX_POD_IPS: L.ML_MAX_POD_IPS,
    ML_MAX_PORTS: L.ML_MAX_PORTS,
    ML_MAX_CIDRS: L.ML_MAX_CIDRS,
    ML_MAX_COUNTERS: L.ML_MAX_COUNTERS,
    ML_FAMILY_NONE: L.ML_FAMILY_NONE,
    ML_FAMILY_V4: L.ML_FAMILY_V4,
    ML_FAMILY_V6: L.ML_FAMILY_V6,
    ML_POD_F_MESHED: L.POD_F.MESHED,
    ML_POD_F_HAS_V4: L.POD_F.HAS_V4,
    ML_POD_F_HAS_V6: L.POD_F.HAS_V6,
    ML_POD_F_DNS_CAPTURE: L.POD_F.DNS_CAPTURE,
    ML_CFG_F_IN_PORTS_LISTED: L.CFG_F.IN_PORTS_LISTED,
    ML_CFG_F_OUT_CIDRS_LISTED: L.CFG_F.OUT_CIDRS_LISTED,
    ML_CFG_F_OUT_CIDRS_EXCL_ALL: L.CFG_F.OUT_CIDRS_EXCL_ALL,
    ML_ODST_F_OUTBOUND: L.ODST_F.OUTBOUND,
    ML_ODST_F_INBOUND: L.ODST_F.INBOUND,
    ML_ODST_F_V6_SOCKET: L.ODST_F.V6_SOCKET,
    ML_ODST_F_TC_INBOUND: L.ODST_F.TC_INBOUND,
    ML_SET_F_SOCKMAP_REDIRECT: L.SET_F.SOCKMAP_REDIRECT,
    ML_SET_F_SOCKMAP_PROXY_ONLY: L.SET_F.SOCKMAP_PROXY_ONLY,
    ML_CNT__COUNT: L.COUNTERS.length,
  };
  L.COUNTERS.forEach((c, i) => {
    constants[L.counterEnumName(c)] = i;
  });
  const names = Object.keys(constants);
  const src = [
    '#include <stdio.h>',
    '#include "meshlane.h"',
    'int main(void) {',
    ...names.map((n) => `  printf("%s %llu\\n", "${n}", (unsigned long long)(${n}));`),
    '  return 0;',
    '}',
  ].join('\n');
  writeFileSync(join(dir, 'probe.c'), src);
  execFileSync('cc', ['-Wall', '-Werror', '-I', join(repoRoot, 'bpf'), '-o', join(dir, 'probe'), join(dir, 'probe.c')]);
  const fromC = Object.fromEntries(
    execFileSync(join(dir, 'probe'), { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((l) => {
        const [k, v] = l.split(' ');
        return [k, Number(v)];
      }),
  );
  t.same(fromC, constants);
});

t.test('encode/decode round trip and limits', async (t) => {
  const cfg: L.PodConfig = {
    flags: L.CFG_F.IN_PORTS_LISTED,
    status_port: 15021,
    include_in_ports: [80, 443],
    exclude_in_ports: [],
    include_out_ports: [],
    exclude_out_ports: [5555],
    include_out_cidrs: [{ addr: new Uint8Array(16).fill(1), prefix_len: 104, family: L.ML_FAMILY_V4 }],
    exclude_out_cidrs: [],
  };
  const bytes = L.podConfig.encode(cfg);
  t.equal(bytes.length, 1544);
  const back = L.podConfig.decode(bytes);
  t.same(back.include_in_ports.slice(0, 3), [80, 443, 0]);
  t.equal(back.exclude_out_ports[0], 5555);
  t.equal(back.include_out_cidrs[0]?.prefix_len, 104);
  t.equal(back.include_out_cidrs[1]?.family, L.ML_FAMILY_NONE, 'a NONE entry ends the list');
  t.throws(() => L.podConfig.encode({ ...cfg, include_in_ports: Array.from({ length: 33 }, (_, i) => i + 1) }), /at most 32/);
  t.throws(() => L.settings.encode({ proxy_uid: -1, proxy_gid: 0, outbound_port: 0, inbound_port: 0, dns_port: 0, flags: 0 }), /u32/);
  const od = L.origDst.encode({ addr: new Uint8Array(16), port: 8080, family: 2, flags: 1 });
  t.same([od[16], od[17]], [0x1f, 0x90], 'ports of the kernel side are network order');
});
