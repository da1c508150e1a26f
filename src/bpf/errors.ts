// Errors of the datapath, each saying what failed and what to do.
import { CommandError } from '../sys/exec.js';

export class DatapathError extends Error {
  override name = 'DatapathError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The verifier's own words from a failed bpftool load (libbpf's PROG LOAD LOG blocks). */
export function verifierLog(stderr: string, maxLines = 60): string | undefined {
  const blocks = [...stderr.matchAll(/-- BEGIN PROG LOAD LOG --\n([\s\S]*?)-- END PROG LOAD LOG --/g)].map((m) => m[1] ?? '');
  if (blocks.length === 0) return undefined;
  const lines = blocks.join('\n').trimEnd().split('\n');
  return (lines.length > maxLines ? ['...', ...lines.slice(-maxLines)] : lines).join('\n');
}

export function loadFailure(object: string, err: unknown): DatapathError {
  if (!(err instanceof CommandError)) return new DatapathError(`loading ${object} failed: ${String(err)}`, { cause: err });
  const log = verifierLog(err.stderr);
  const failedProg = /prog '([^']+)': (?:BPF program load failed|failed to load)[^\n]*/.exec(err.stderr)?.[0];
  if (log) {
    return new DatapathError(
      `the kernel's verifier rejected a meshlane program in ${object}${failedProg ? ` (${failedProg})` : ''}; verifier log:\n${log}`,
      { cause: err },
    );
  }
  if (/unknown func|Invalid argument|not supported|Unknown|unrecognized/i.test(err.stderr)) {
    return new DatapathError(
      `loading ${object} failed; the kernel may lack a feature meshlane needs (cgroup v2 BPF, sockmap, BTF; Linux >= 5.10): ${err.message}`,
      { cause: err },
    );
  }
  return new DatapathError(`loading ${object} failed: ${err.message}`, { cause: err });
}
