// The operator's command line: `meshlane <command> [flags]`.
// One command per module under ./commands, loaded only when chosen.
// A failure is told by its class: a UsageError (how the command was called)
// exits 2 and a UserError (something on the node the user can fix) exits 1, each
// as one line; anything else is a bug, printed with its stack, exit 70.
import { bugReport, EXIT_BUG } from '../describe-error.js';
import { UsageError, UserError, type CliCommand, type CliContext } from './context.js';
import { COMMANDS, findCommand } from './commands/index.js';
import { helpText } from './help.js';

export async function runCli(argv: readonly string[], ctx: CliContext = defaultContext(), commands: readonly CliCommand[] = COMMANDS): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined;
    const command = topic === undefined ? undefined : findCommand(topic, commands);
    if (topic !== undefined && command === undefined) {
      ctx.stderr.write(`meshlane: unknown command '${topic}'\n\n${helpText(commands)}`);
      return 2;
    }
    ctx.stdout.write(command ? command.help : helpText(commands));
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    return runCli(['version', ...rest], ctx, commands);
  }
  const command = findCommand(name, commands);
  if (!command) {
    ctx.stderr.write(`meshlane: unknown command '${name}'; run 'meshlane --help' for the list\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    ctx.stdout.write(command.help);
    return 0;
  }
  try {
    return await command.run(rest, ctx);
  } catch (err) {
    if (err instanceof UsageError) {
      ctx.stderr.write(`meshlane ${name}: ${err.message}\n`);
      return 2;
    }
    if (err instanceof UserError) {
      ctx.stderr.write(`meshlane ${name}: ${err.message}\n`);
      return 1;
    }
    ctx.stderr.write(bugReport(`meshlane ${name}`, err));
    return EXIT_BUG;
  }
}

function defaultContext(): CliContext {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env };
}
