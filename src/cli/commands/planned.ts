// Commands that later work adds. They are listed in --help so operators see the
// whole tool, and they answer with a clear message and exit code instead of a crash.
import type { CliCommand } from '../context.js';

/** Exit code for "this build does not have that command yet" (EX_UNAVAILABLE). */
export const EXIT_NOT_IN_THIS_BUILD = 69;

export function plannedCommand(name: string, summary: string): CliCommand {
  return {
    name,
    summary: `${summary} (not in this build yet)`,
    help: `Usage: meshlane ${name}\n\n${summary}.\nThis build of meshlane does not have '${name}' yet.\n`,
    async run(_args, ctx) {
      ctx.stderr.write(
        `meshlane ${name}: not available in this build of meshlane; upgrade to a release that lists it without "(not in this build yet)" in 'meshlane --help'\n`,
      );
      return EXIT_NOT_IN_THIS_BUILD;
    },
  };
}
