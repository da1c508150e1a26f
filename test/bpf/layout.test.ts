// The TypeScript mirror of bpf/meshlane.h agrees with the C side:
// - struct sizes, member offsets and sizes against the BTF clang put in dist/bpf/meshlane.o;
// - counter ids, flags and capacities against a host program compiled from the header.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import * as L from '../../src/bpf/layout.js';
import type { StructCodec } from '../../src/bpf/codec.js';
import { distBpfObject, repoRoot } from '../helpers/paths.js';

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
}

function loadBtf(): Map<number, BtfType> {
  let out: string;
  try {
    out = execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', distBpfObject], { encoding: 'utf8' });
  } catch (err) {
    throw new Error(`cannot read the BTF of ${distBpfObject} (run 'npm run build'; needs bpftool): ${(err as Error).message}`);
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

const codecs: StructCodec<object>[] = [L.podCg, L.cidr, L.podConfig, L.origDst, L.tuple, L.settings, L.tcFlowKey, L.tcFlow] as StructCodec<object>[];

t.test('struct layouts match the object BTF', async (t) => {
  const btf = loadBtf();
  for (const codec of codecs) {
    const st = [...btf.values()].find((x) => x.kind === 'STRUCT' && x.name === codec.cName);
    if (!st) {
      t.fail(`struct ${codec.cName} is not in the BTF of ${distBpfObject}`);
      continue;
    }
    t.equal(st.size, codec.size, `sizeof(struct ${codec.cName})`);
    const members = st.members ?? [];
    t.same(
      members.map((m) => ({ name: m.name, offset: m.bits_offset / 8, size: sizeOfType(btf, m.type_id) })),
      codec.fields.map((f) => ({ name: f.name, offset: f.offset, size: f.size })),
      `members of struct ${codec.cName}`,
    );
  }
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
