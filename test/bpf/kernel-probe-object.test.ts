// The kernel probe asks for exactly what the built objects use: every program
// section of dist/bpf/meshlane.o and meshlane-compat.o has a need, and the
// helpers each section calls in either build
// (read from the object's instructions: BPF_CALL with src_reg 0; bpf-to-bpf
// calls into .text bring .text's helpers along) are the need's helpers plus the
// optional ones probed for that section, no more and no fewer. A new helper in
// bpf/ without a probe, or a probe for a helper no longer used, fails here.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t from 'tap';
import { HELPER, OPTIONAL_NEEDS, PROGRAM_NEEDS } from '../../src/bpf/kernel-probe.js';
import { distBpfObject } from '../helpers/paths.js';

const objects = [distBpfObject, join(dirname(distBpfObject), 'meshlane-compat.o')];

/** Helper ids called per program section, bpf-to-bpf calls into .text bringing .text's along. */
function helpersBySection(object: string): Map<string, Set<number>> {
  if (!existsSync(object)) throw new Error(`${object} is missing: run 'npm run build'`);
  let dump: string;
  try {
    dump = execFileSync('llvm-objdump', ['-d', object], { encoding: 'utf8', maxBuffer: 64 << 20 });
  } catch (err) {
    throw new Error(`llvm-objdump could not disassemble ${object} (apt-get install llvm; scripts/setup.sh does it): ${String(err)}`);
  }
  const helpers = new Map<string, Set<number>>();
  const callsText = new Set<string>();
  let section = '';
  for (const line of dump.split('\n')) {
    const sec = /^Disassembly of section (\S+):/.exec(line);
    if (sec) {
      section = sec[1] ?? '';
      helpers.set(section, new Set());
      continue;
    }
    // "  76:\t85 00 00 00 eb 00 00 00\tcall 235": opcode 0x85, regs byte (src_reg in the high nibble), off, imm (little-endian).
    const m = /^\s*\d+:\s+85 ([0-9a-f]{2}) [0-9a-f]{2} [0-9a-f]{2} ([0-9a-f]{2}) ([0-9a-f]{2}) ([0-9a-f]{2}) ([0-9a-f]{2})\s/.exec(line);
    if (!m) continue;
    const src = parseInt(m[1] ?? '0', 16) >> 4;
    if (src === 1) {
      callsText.add(section);
      continue;
    }
    if (src !== 0) continue;
    const imm = Buffer.from([m[2], m[3], m[4], m[5]].map((h) => parseInt(h ?? '0', 16))).readInt32LE(0);
    helpers.get(section)?.add(imm);
  }
  const textHelpers = helpers.get('.text') ?? new Set<number>();
  helpers.delete('.text');
  for (const s of callsText) for (const h of textHelpers) helpers.get(s)?.add(h);
  return helpers;
}

/** Per section, what either build calls. */
const helpers = new Map<string, Set<number>>();
for (const o of objects) {
  const own = helpersBySection(o);
  t.ok(own.size >= 8, `${o}: program sections read (${[...own.keys()].join(', ')})`);
  for (const [s, ids] of own) helpers.set(s, new Set([...(helpers.get(s) ?? []), ...ids]));
}
const programSections = [...helpers.keys()];
const byId = new Map<number, string>(Object.entries(HELPER).map(([name, id]) => [id, name]));

for (const s of programSections) {
  t.test(s, async (t) => {
    const need = PROGRAM_NEEDS.find((n) => n.section === s);
    if (!need) {
      t.fail(`the object has a section ${s} the kernel probe does not know: add it to PROGRAM_NEEDS in src/bpf/kernel-probe.ts`);
      return;
    }
    const called = helpers.get(s) ?? new Set<number>();
    const optional: number[] = OPTIONAL_NEEDS.filter((o) => o.sections.includes(s)).map((o) => HELPER[o.helper]);
    const expected = new Set<number>([...need.helpers.map((h) => HELPER[h]), ...optional]);
    const name = (id: number): string => `bpf_${byId.get(id) ?? `helper#${id}`}`;
    t.same([...called].sort((a, b) => a - b).map(name), [...expected].sort((a, b) => a - b).map(name), 'the helpers either build calls are the ones probed for it');
  });
}
