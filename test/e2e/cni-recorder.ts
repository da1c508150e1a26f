// A transparent recorder in front of the meshlane plugin binary: the runtime
// runs <bin>/meshlane, which saves the call (CNI_COMMAND, CNI_CONTAINERID,
// stdin, stdout, exit code) into a directory of its own and runs the real
// binary with the same stdin, environment and stdout. So a test can see
// exactly which calls containerd made (e.g. the second DEL, without
// prevResult, that RemovePodSandbox sends) and what each returned.
import { chmodSync, existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface RecordedCall {
  /** the record's directory name: <ns since epoch>-<pid> (sorts in call order) */
  id: string;
  command: string;
  containerId: string;
  stdin: Record<string, unknown>;
  stdout: string;
  exitCode: number;
}

const sh = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** Move <binDir>/<name> to <name>.real and put the recorder in its place. */
export function wrapPlugin(binDir: string, recordDir: string, name = 'meshlane'): string {
  const bin = join(binDir, name);
  const real = join(binDir, `${name}.real`);
  if (!existsSync(bin)) throw new Error(`${bin} is missing: nothing to wrap`);
  renameSync(bin, real);
  const script = `#!/bin/sh
# meshlane e2e: record this CNI call, then run the real plugin with the same stdin and env,
# but a PATH that holds nothing: the plugin needs no tool of the host (bpftool, tc, ip, nsenter).
d=${sh(recordDir)}/"$(date +%s%N)-$$"
mkdir -p "$d" || exit 1
printf '%s' "$CNI_COMMAND" > "$d/command"
printf '%s' "$CNI_CONTAINERID" > "$d/container"
cat > "$d/stdin"
PATH=/nonexistent ${sh(real)} < "$d/stdin" > "$d/stdout"
rc=$?
printf '%s' "$rc" > "$d/rc"
cat "$d/stdout"
exit $rc
`;
  writeFileSync(bin, script, { mode: 0o755 });
  chmodSync(bin, 0o755);
  return real;
}

/** Every completed call, oldest first. */
export function recordedCalls(recordDir: string): RecordedCall[] {
  if (!existsSync(recordDir)) return [];
  const out: RecordedCall[] = [];
  for (const id of readdirSync(recordDir).sort()) {
    const d = join(recordDir, id);
    const read = (f: string): string | undefined => {
      try {
        return readFileSync(join(d, f), 'utf8');
      } catch {
        return undefined;
      }
    };
    const rc = read('rc');
    if (rc === undefined) continue; // still running
    let stdin: Record<string, unknown> = {};
    try {
      stdin = JSON.parse(read('stdin') ?? '{}') as Record<string, unknown>;
    } catch {
      stdin = { unparsable: read('stdin') };
    }
    out.push({ id, command: read('command') ?? '', containerId: read('container') ?? '', stdin, stdout: read('stdout') ?? '', exitCode: Number(rc) });
  }
  return out;
}
