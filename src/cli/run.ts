// The operator's command line: `meshlane <command> [flags]`.
// One command per module under ./commands, loaded only when chosen.
import { UsageError, type CliContext } from './context.js';
import { COMMANDS, findCommand } from './commands/index.js';
import { helpText } from './help.js';

export async function runCli(argv: readonly string[], ctx: CliContext = defaultContext()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined;
    const command = topic === undefined ? undefined : findCommand(topic);
    if (topic !== undefined && command === undefined) {
      ctx.stderr.write(`meshlane: unknown command '${topic}'\n\n${helpText(COMMANDS)}`);
      return 2;
    }
    ctx.stdout.write(command ? command.help : helpText(COMMANDS));
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    return runCli(['version', ...rest], ctx);
  }
  const command = findCommand(name);
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
    throw err;
  }
}

function defaultContext(): CliContext {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env };
}
