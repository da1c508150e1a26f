// A user's mistake is told from a bug by its class: a UsageError exits 2 and a
// failure the user can fix on the node exits 1, each as one line without a
// stack; anything else is a bug, printed as one on stderr with its stack, exit 70.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { DatapathError } from '../../src/bpf/errors.js';
import { nodeCommand } from '../../src/cli/commands/node-command.js';
import type { CliCommand } from '../../src/cli/context.js';
import { runCli } from '../../src/cli/run.js';
import { bugReport, errnoOf, errorMessage, EXIT_BUG, INTERNAL_ERROR_MSG, isSystemError } from '../../src/describe-error.js';
import { ConflistError } from '../../src/install/cniconf/files.js';
import { userFacing } from '../../src/install/failures.js';
import { ServiceAccountError } from '../../src/install/kubeconfig.js';
import { CommandError } from '../../src/sys/exec.js';
import { UsageError, UserError } from '../../src/usage-error.js';
import { cliIo as io } from '../helpers/cli-io.js';

/** A failed system call as Node makes it (ENOENT, with syscall and path). */
function enoent(): Error {
  try {
    readdirSync(join('/nonexistent-meshlane-test', String(process.pid)));
  } catch (err) {
    if (err instanceof Error) return err;
  }
  throw new Error('readdirSync of a missing dir did not fail');
}

function throwing(name: string, thrown: unknown): CliCommand {
  return {
    name,
    summary: `throws ${name}`,
    help: `Usage: meshlane ${name}\n`,
    run: () => Promise.reject(thrown),
  };
}

function failingNode(name: string, thrown: unknown): CliCommand {
  return nodeCommand({ name, summary: 'fails', usage: [`Usage: meshlane ${name}`], flags: [], load: async () => () => Promise.reject(thrown) });
}

const hasStack = (text: string): boolean => /^\s+at /m.test(text);

t.test('errorMessage, errnoOf and isSystemError go by type, not by a cast', async (t) => {
  const sys = enoent();
  t.equal(errorMessage(new TypeError('bad')), 'bad');
  t.equal(errorMessage('plain text'), 'plain text');
  t.equal(errorMessage(42), '42');
  t.equal(errorMessage({ toString: () => { throw new Error('no'); } }), 'a value that cannot be shown');
  t.equal(errnoOf(sys), 'ENOENT');
  t.ok(isSystemError(sys));
  t.equal(errnoOf(Object.assign(new TypeError('x'), { code: 'ERR_INVALID_ARG_TYPE' })), undefined, "Node's own error codes are bugs, not the system's answer");
  t.equal(errnoOf({ code: 'ENOENT', message: 'not an Error' }), undefined, 'only Errors');
  t.equal(errnoOf(new Error('no code')), undefined);
  t.notOk(isSystemError(new SyntaxError('x')));
});

t.test('a bug report says it is a bug and keeps the stack', async (t) => {
  const text = bugReport('meshlane x', new RangeError('off by one'));
  t.match(text, /^meshlane x: internal error: this is a bug in meshlane, please report it\nRangeError: off by one\n\s+at /);
  t.match(bugReport('meshlane', 'a string'), /non-error value thrown: a string\n$/);
});

t.test('the CLI: usage 2, a user error 1 as one line, a bug 70 with its stack', async (t) => {
  const usage = io();
  t.equal(await runCli(['u'], usage, [throwing('u', new UsageError('--x: not a number'))]), 2);
  t.equal(usage.err(), 'meshlane u: --x: not a number\n');

  const user = io();
  t.equal(await runCli(['f'], user, [throwing('f', new UserError('no cgroup2 mount in /proc/mounts'))]), 1);
  t.equal(user.err(), 'meshlane f: no cgroup2 mount in /proc/mounts\n', 'one line, no stack');
  t.equal(user.out(), '');

  for (const thrown of [new TypeError("Cannot read properties of undefined (reading 'pinDir')"), new Error('an assertion of ours'), 'a thrown string']) {
    const bug = io();
    t.equal(await runCli(['b'], bug, [throwing('b', thrown)]), EXIT_BUG, 'a bug has its own exit status');
    t.equal(EXIT_BUG, 70);
    t.ok(bug.err().startsWith(`meshlane b: ${INTERNAL_ERROR_MSG}\n`), 'says it is a bug in meshlane');
    t.match(bug.err(), thrown instanceof Error ? thrown.message : thrown);
    if (thrown instanceof Error) t.ok(hasStack(bug.err()), 'with the stack');
    t.equal(bug.out(), '', 'stdout untouched');
  }
});

t.test('node commands: what the node answered is a user error, anything else a bug', async (t) => {
  const userCases: Array<[string, unknown, RegExp]> = [
    ['a missing dir', enoent(), /ENOENT: no such file or directory, scandir/],
    ['a permission', Object.assign(new Error("EACCES: permission denied, open '/etc/cni/net.d/10-x.conflist'"), { code: 'EACCES' }), /EACCES/],
    ['a tool that failed', new CommandError(['mount', '-t', 'bpf', 'bpf', '/sys/fs/bpf'], 32, undefined, 'mount: permission denied', 3), /: mount -t bpf bpf \/sys\/fs\/bpf failed \(exit code 32, 3 ms\): mount: permission denied\n$/],
    ['the kernel refusing', new DatapathError('loading meshlane.o failed; the kernel may lack a feature meshlane needs'), /kernel may lack/],
    ['a config meshlane will not edit', new ConflistError('10-x.conflist: not valid UTF-8; meshlane will not rewrite it'), /will not rewrite/],
    ['no service account', new ServiceAccountError('the service account token in /var/run/secrets is empty'), /token/],
    ['a UserError', new UserError('no cgroup2 mount'), /no cgroup2 mount/],
  ];
  for (const [what, thrown, message] of userCases) {
    const c = io();
    t.equal(await runCli(['install'], c, [failingNode('install', thrown)]), 1, `${what}: exit 1`);
    const lines = c.err().split('\n').filter((l) => l !== '');
    t.match(lines[0], /^meshlane install: /, `${what}: named by its command`);
    t.match(c.err(), message, `${what}: its message`);
    t.notOk(hasStack(c.err()), `${what}: no stack`);
    t.notMatch(c.err(), /internal error/, `${what}: not called a bug`);
  }
  const usage = io();
  t.equal(await runCli(['status'], usage, [failingNode('status', new UsageError('--pin-dir: "x" is not an absolute path'))]), 2, 'usage is still 2');

  for (const thrown of [new TypeError("Cannot read properties of undefined (reading 'length')"), new Error('bpftool printed no JSON'), new SyntaxError('Unexpected token')]) {
    const c = io();
    t.equal(await runCli(['uninstall'], c, [failingNode('uninstall', thrown)]), EXIT_BUG, `${thrown.name}: a bug`);
    t.ok(c.err().startsWith(`meshlane uninstall: ${INTERNAL_ERROR_MSG}\n${thrown.name}: ${thrown.message}\n`), 'the bug line, then the error');
    t.ok(hasStack(c.err()), 'with the stack');
  }
});

t.test('userFacing keeps the cause and passes usage errors through', async (t) => {
  const sys = enoent();
  const u = userFacing(sys);
  t.type(u, UserError);
  t.equal(u?.message, sys.message);
  t.equal(u?.cause, sys, 'the original error is the cause');
  const usage = new UsageError('bad flag');
  t.equal(userFacing(usage), usage);
  t.equal(userFacing(new TypeError('x')), undefined);
  t.equal(userFacing(undefined), undefined);
});
