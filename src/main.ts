// The one entry point of the executable. Plugin mode when the runtime set
// CNI_COMMAND (the CNI spec's contract); the operator's command line otherwise.
// Each mode is loaded lazily so that a CNI call loads only what it needs.
import { bugReport, EXIT_BUG } from './describe-error.js';

async function main(): Promise<number> {
  if (process.env['CNI_COMMAND'] !== undefined) {
    const { runPlugin } = await import('./plugin/run.js');
    return runPlugin();
  }
  const { runCli } = await import('./cli/run.js');
  return runCli(process.argv.slice(2));
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // A bug: the modes catch what they expect. Say so on stderr only: stdout is the CNI channel.
    process.stderr.write(bugReport('meshlane', err));
    process.exitCode = EXIT_BUG;
  },
);
