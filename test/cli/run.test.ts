import t from 'tap';
import { runCli } from '../../src/cli/run.js';
import { cliIo as ctx } from '../helpers/cli-io.js';

t.test('a bad flag of the node commands is a usage error, not a crash', async (t) => {
  for (const name of ['install', 'uninstall', 'status']) {
    const c = ctx();
    const code = await runCli([name, '--no-such-flag'], c);
    t.equal(code, 2, name);
    t.match(c.err(), new RegExp(`meshlane ${name}: .*no-such-flag`));
    t.equal(c.out(), '');
  }
  const c = ctx();
  t.equal(await runCli(['install', '--pin-dir', 'relative/path'], c), 2);
  t.match(c.err(), /--pin-dir: "relative\/path" is not an absolute path/);
});

t.test('help for one command', async (t) => {
  const c = ctx();
  t.equal(await runCli(['help', 'version'], c), 0);
  t.match(c.out(), /Usage: meshlane version \[--json\]/);
  const d = ctx();
  t.equal(await runCli(['version', '--help'], d), 0);
  t.match(d.out(), /--json/);
  const e = ctx();
  t.equal(await runCli(['help', 'nope'], e), 2);
  t.match(e.err(), /unknown command 'nope'/);
});

t.test('--version is version', async (t) => {
  const c = ctx();
  t.equal(await runCli(['--version'], c), 0);
  t.match(c.out(), /^meshlane /);
});
