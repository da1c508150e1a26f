// `meshlane sockmap-probe`: run the installer's sockmap fault probe on this
// node's kernel and say which --sockmap modes the installer would run here,
// without installing anything. The probe creates and removes its own sockhash,
// program and loopback sockets (src/bpf/sockmap-probe.ts).
import { probeSockmap } from '../bpf/sockmap-probe.js';
import { errorMessage } from '../describe-error.js';
import type { CommandIo } from './commands.js';
import { parseOptions } from './options.js';
import { decideSockmap, FAULT_TEXT, sockmapFaults, type SockmapDecision } from './sockmap-safety.js';

export async function runSockmapProbe(args: readonly string[], ctx: CommandIo, flags: readonly string[]): Promise<number> {
  const opts = parseOptions(args, ctx.env, flags);
  let probe;
  try {
    probe = probeSockmap();
  } catch (err) {
    probe = err instanceof Error ? err : new Error(errorMessage(err));
  }
  const modes: Record<'on' | 'proxy-only', SockmapDecision> = { on: decideSockmap('on', probe), 'proxy-only': decideSockmap('proxy-only', probe) };
  const faults = probe instanceof Error ? modes.on.faults : sockmapFaults(probe);
  if (opts.json) {
    ctx.stdout.write(`${JSON.stringify({ probe: probe instanceof Error ? { error: probe.message } : probe, faults, allowed: modes.on.allowed, modes }, null, 2)}\n`);
    return 0;
  }
  const lines = [`kernel ${probe instanceof Error ? '(not probed)' : probe.kernel}: sockmap modes the installer runs here: ${modes.on.allowed.join(', ')}`];
  lines.push(faults.length ? 'faults:' : 'faults: none');
  for (const f of faults) lines.push(`  ${f}: ${FAULT_TEXT[f]}`);
  for (const m of ['proxy-only', 'on'] as const) lines.push(`--sockmap ${m}: ${modes[m].message}`);
  ctx.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
