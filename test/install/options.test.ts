// One command line fits install, status and uninstall: each accepts every flag of
// install (ignoring those it has no use for, as its help says), and uses its own.
import t from 'tap';
import { INSTALL_FLAGS, STATUS_FLAGS, UNINSTALL_FLAGS, optionsHelp, parseOptions } from '../../src/install/options.js';
import { UsageError } from '../../src/usage-error.js';

const installLine = [
  '--cni-net-dir', '/n/net.d', '--cni-bin-dir', '/n/bin', '--cgroup-root', '/n/cg', '--bpffs', '/n/bpf', '--pin-dir', '/n/bpf/ml',
  '--state-dir', '/n/state', '--conf-name', '10-x.conflist', '--kubeconfig', '/n/kc', '--log-level', 'debug', '--log-file', '/n/log',
  '--health-address', '127.0.0.1', '--health-port', '0', '--sockmap', 'proxy-only', '--proxy-uid', '1000', '--proxy-gid', '1000',
  '--exclude-namespaces', 'a,b', '--dns-capture', '--bpf-object', '/n/o', '--once',
];

t.test("install's whole command line is accepted by status and uninstall", async (t) => {
  const inst = parseOptions(installLine, {}, INSTALL_FLAGS);
  t.equal(inst.cniBinDir, '/n/bin');
  t.equal(inst.sockmap, 'proxy-only');
  for (const [name, flags] of [['status', STATUS_FLAGS], ['uninstall', UNINSTALL_FLAGS]] as const) {
    const o = parseOptions(installLine, {}, flags);
    t.equal(o.pinDir, '/n/bpf/ml', `${name} uses --pin-dir`);
    t.equal(o.cniNetDir, '/n/net.d', `${name} uses --cni-net-dir`);
    t.equal(o.stateDir, '/n/state', `${name} uses --state-dir`);
    t.equal(o.cgroupRoot, '/n/cg', `${name} uses --cgroup-root`);
    t.equal(o.sockmap, 'off', `${name} ignores --sockmap`);
    t.equal(o.healthPort, 15099, `${name} ignores --health-port`);
    t.equal(o.once, false, `${name} ignores --once`);
  }
  t.equal(parseOptions(installLine, {}, UNINSTALL_FLAGS).cniBinDir, '/n/bin', 'uninstall uses --cni-bin-dir');
  t.equal(parseOptions([...installLine, '--json'], {}, STATUS_FLAGS).json, true, "status's own --json");
});

t.test('an unknown flag is still a usage error', async (t) => {
  t.throws(() => parseOptions(['--no-such-flag', 'x'], {}, STATUS_FLAGS), UsageError);
  t.throws(() => parseOptions(['--json'], {}, INSTALL_FLAGS), UsageError, 'json is status only');
});

t.test('help names the flags accepted and ignored', async (t) => {
  const help = optionsHelp('Usage: meshlane status', STATUS_FLAGS);
  t.match(help, /Accepted and ignored here/);
  t.match(help, /--cni-bin-dir/);
  t.match(help, /--sockmap/);
  t.notMatch(optionsHelp('Usage: meshlane install', INSTALL_FLAGS), /Accepted and ignored/);
});
