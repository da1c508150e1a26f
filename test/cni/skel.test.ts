// runCni with in-memory streams: what each command prints, every error path, and that
// stdout is always exactly one JSON document or nothing.
import t from 'tap';
import { Readable, Writable } from 'node:stream';
import { CniError, INTERNAL_ERROR_MSG } from '../../src/cni/errors.js';
import { parseResult, resultToJson, type PrevResult } from '../../src/cni/result.js';
import { runCni, type CniRequest } from '../../src/cni/skel.js';
import { passThroughHandlers } from './passthrough-handlers.js';
import { SUPPORTED_VERSIONS } from '../../src/cni/versions.js';
import { RecordingLogger, baseEnv, conf, readFixture, run, stdinOf, stdoutShape } from './helpers.js';

const SUPPORTED = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
const STACK_RE = /\n\s+at |\.(ts|js):\d+:\d+/;

t.test('VERSION', async (t) => {
  const plain = await run({ env: { CNI_COMMAND: 'VERSION' } });
  t.equal(plain.code, 0);
  t.equal(plain.stdout, '{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}\n');
  t.equal(plain.writes, 1);
  t.same(plain.loggers[0]?.config, {}, 'no config: default logger');
  t.equal(plain.loggers[0]?.logger.closed, 1, 'log closed');

  for (const v of SUPPORTED_VERSIONS) {
    const r = await run({ env: { CNI_COMMAND: 'VERSION' }, stdin: `{"cniVersion":"${v}"}` });
    t.same(r.json, { cniVersion: v, supportedVersions: SUPPORTED }, `request in ${v}`);
  }
  for (const stdin of ['{"cniVersion":"0.2.0"}', '{"cniVersion":"9.9.9"}', 'garbage', '\u0000\u0001', '[]', Buffer.alloc(2 * 1024 * 1024, 0x20)]) {
    const r = await run({ env: { CNI_COMMAND: 'VERSION' }, stdin });
    t.equal(r.code, 0, 'VERSION never fails on its input');
    t.same(r.json, { cniVersion: '1.1.0', supportedVersions: SUPPORTED });
  }
  const r = await run({ env: { CNI_COMMAND: 'VERSION' }, stdin: conf({ log_level: 'debug' }, '0.4.0') });
  t.equal(r.loggers[0]?.config['log_level'], 'debug', 'a readable config configures the log');

  // A terminal on stdin is not waited for.
  const tty = Object.assign(new Readable({ read() {} }), { isTTY: true });
  const ttyRun = await run({ env: { CNI_COMMAND: 'VERSION' }, stdin: tty });
  t.equal(ttyRun.code, 0);
  tty.destroy();
});

for (const version of SUPPORTED_VERSIONS) {
  t.test(`ADD ${version}: prevResult passes through, in the request's version`, async (t) => {
    for (const file of ['bridge-host-local-1.0.0.json', 'ptp-host-local-0.3.1.json']) {
      const prev = readFixture(file);
      let seen: CniRequest | undefined;
      const r = await run({
        env: baseEnv,
        stdin: conf({ prevResult: prev, log_file: '/tmp/x.log' }, version),
        handlers: {
          add: (req) => {
            seen = req;
            return Promise.resolve(req.prevResult as PrevResult);
          },
        },
      });
      t.equal(r.code, 0, `${file} exit 0`);
      t.equal(stdoutShape(r.stdout), 'one-document');
      t.same(r.json, resultToJson(parseResult(prev), version), `${file} converted to ${version}`);
      t.equal(r.json?.['cniVersion'], version);
      t.ok(seen, 'handler called');
      if (!seen) continue;
      t.equal(seen.command, 'ADD');
      t.equal(seen.containerId, 'c0ffee1234');
      t.equal(seen.netns, '/var/run/netns/test');
      t.equal(seen.ifname, 'eth0');
      t.same(seen.path, ['/opt/cni/bin', '/usr/lib/cni']);
      t.equal(seen.args.get('K8S_POD_UID'), '0d5c3a8e-2f6b-4c1e-9a77-1b2c3d4e5f60');
      t.equal(seen.cniVersion, version);
      t.equal(seen.config['log_file'], '/tmp/x.log', 'plugin fields reach the handler');
      t.equal(seen.prevResult?.ips.length, 2);
      t.equal(seen.log, r.loggers[0]?.logger);
      t.same(r.loggers[0]?.fields, { command: 'ADD', containerId: 'c0ffee1234', pod: 'default/web-0' });
      t.equal(r.loggers[0]?.config['log_file'], '/tmp/x.log', 'the logger gets the config');
      t.equal(r.loggers[0]?.logger.closed, 1);
      t.same(r.lines.map((l) => `${l.level} ${l.msg}`), ['info CNI call', 'info CNI call done']);
      t.has(r.lines[0]?.fields, { command: 'ADD', containerId: 'c0ffee1234', pod: 'default/web-0', netns: '/var/run/netns/test', ifname: 'eth0', cniVersion: version, network: 'k8s-pod-network', prevResult: true });
    }
  });
}

t.test('ADD: a plain JSON result from the handler is validated and converted', async (t) => {
  const r = await run({
    env: baseEnv,
    stdin: conf({}, '0.4.0'),
    handlers: { add: () => Promise.resolve({ ips: [{ address: '10.0.0.2/24', interface: 0 }], interfaces: [{ name: 'eth0', sandbox: '/ns' }] }) },
  });
  t.equal(r.code, 0);
  t.same(r.json, { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.0.0.2/24', interface: 0 }], interfaces: [{ name: 'eth0', sandbox: '/ns' }] });
});

t.test('ADD: a bad result from the handler is a bug (999)', async (t) => {
  const bad = await run({ env: baseEnv, stdin: conf(), handlers: { add: () => Promise.resolve({ ips: [{ address: 'x' }] }) } });
  t.equal(bad.code, 1);
  t.same(bad.json, {
    cniVersion: '1.0.0',
    code: 999,
    msg: INTERNAL_ERROR_MSG,
    details: 'the ADD handler returned an invalid result: CniError: result.ips[0].address is not an IP address with a prefix length: got "x"',
  });
  const none = await run({ env: baseEnv, stdin: conf(), handlers: { add: () => Promise.resolve(undefined as unknown as PrevResult) } });
  t.same(none.json, { cniVersion: '1.0.0', code: 999, msg: INTERNAL_ERROR_MSG, details: 'the ADD handler returned undefined, not a result' });
});

t.test('ADD first in a chain (no prevResult) with the pass-through handlers: an empty result', async (t) => {
  const r = await run({ env: baseEnv, stdin: conf({}, '1.1.0') });
  t.equal(r.code, 0);
  t.same(r.json, { cniVersion: '1.1.0', interfaces: [], ips: [], dns: {} });
  t.equal(r.lines[0]?.fields['prevResult'], false);
});

t.test('DEL prints nothing', async (t) => {
  let calls = 0;
  const del = (): Promise<void> => {
    calls++;
    return Promise.resolve();
  };
  for (const version of SUPPORTED_VERSIONS) {
    const r = await run({ env: { ...baseEnv, CNI_COMMAND: 'DEL' }, stdin: conf({ prevResult: readFixture('bridge-host-local-0.4.0.json') }, version), handlers: { del } });
    t.equal(r.code, 0, version);
    t.equal(r.stdout, '', 'empty stdout');
    t.equal(r.writes, 0);
  }
  const gone = await run({ env: { ...baseEnv, CNI_COMMAND: 'DEL', CNI_NETNS: '' }, stdin: conf(), handlers: { del } });
  t.equal(gone.code, 0, 'netns gone, no prevResult');
  t.equal(calls, SUPPORTED_VERSIONS.length + 1);
});

t.test('DEL with a prevResult it cannot read goes on without it, with a warning', async (t) => {
  let got: CniRequest | undefined;
  const r = await run({
    env: { ...baseEnv, CNI_COMMAND: 'DEL' },
    stdin: conf({ prevResult: { ips: [{ address: 'garbage' }] } }),
    handlers: {
      del: (req) => {
        got = req;
        return Promise.resolve();
      },
    },
  });
  t.equal(r.code, 0);
  t.equal(r.stdout, '');
  t.ok(got);
  t.equal(got?.prevResult, undefined);
  const warn = r.lines.find((l) => l.level === 'warn');
  t.equal(warn?.msg, 'prevResult cannot be read; DEL goes on without it');
  t.equal(warn?.fields['msg'], 'prevResult.ips[0].address is not an IP address with a prefix length');
  // ... while ADD and CHECK refuse it.
  for (const command of ['ADD', 'CHECK']) {
    const refused = await run({ env: { ...baseEnv, CNI_COMMAND: command }, stdin: conf({ prevResult: { ips: [{ address: 'garbage' }] } }) });
    t.equal(refused.code, 1, command);
    t.equal(refused.json?.['code'], 7);
    t.equal(refused.json?.['msg'], 'prevResult.ips[0].address is not an IP address with a prefix length');
  }
});

t.test('CHECK prints nothing; it exists from 0.4.0', async (t) => {
  for (const version of SUPPORTED_VERSIONS) {
    let called = false;
    const r = await run({
      env: { ...baseEnv, CNI_COMMAND: 'CHECK' },
      stdin: conf({ prevResult: readFixture('bridge-host-local-1.0.0.json') }, version),
      handlers: {
        check: () => {
          called = true;
          return Promise.resolve();
        },
      },
    });
    if (version === '0.3.0' || version === '0.3.1') {
      t.equal(r.code, 1, `CHECK refused at ${version}`);
      t.same(r.json, { cniVersion: version, code: 1, msg: 'config version does not allow CHECK', details: `cniVersion is "${version}"; CHECK needs 0.4.0 or later` });
      t.notOk(called, 'handler not called');
    } else {
      t.equal(r.code, 0, `CHECK at ${version}`);
      t.equal(r.stdout, '');
      t.ok(called);
    }
  }
});

for (const command of ['GC', 'STATUS'] as const) {
  t.test(`${command} prints nothing; it exists from 1.1.0 and needs only CNI_PATH`, async (t) => {
    for (const version of SUPPORTED_VERSIONS) {
      let seen: CniRequest | undefined;
      const handler = (req: CniRequest): Promise<void> => {
        seen = req;
        return Promise.resolve();
      };
      const r = await run({
        env: { CNI_COMMAND: command, CNI_PATH: '/opt/cni/bin' },
        stdin: conf({ 'cni.dev/valid-attachments': [{ containerID: 'abc', ifname: 'eth0' }] }, version),
        handlers: { gc: handler, status: handler },
      });
      if (version === '1.1.0') {
        t.equal(r.code, 0, `${command} at 1.1.0`);
        t.equal(r.stdout, '');
        t.equal(seen?.command, command);
        t.same([seen?.containerId, seen?.netns, seen?.ifname], ['', '', '']);
        t.same(seen?.config['cni.dev/valid-attachments'], [{ containerID: 'abc', ifname: 'eth0' }]);
        t.same(r.loggers[0]?.fields, { command }, 'no container, no pod');
      } else {
        t.equal(r.code, 1, `${command} refused at ${version}`);
        t.same(r.json, { cniVersion: version, code: 1, msg: `config version does not allow ${command}`, details: `cniVersion is "${version}"; ${command} needs 1.1.0 or later` });
        t.equal(seen, undefined);
      }
    }
  });
}

t.test('STATUS reports the handler\'s 50/51', async (t) => {
  for (const code of [50, 51]) {
    const r = await run({
      env: { CNI_COMMAND: 'STATUS', CNI_PATH: '/opt/cni/bin' },
      stdin: conf({}, '1.1.0'),
      handlers: { status: () => Promise.reject(new CniError(code, 'meshlane datapath is not installed on this node', 'no pinned maps in /sys/fs/bpf/meshlane')) },
    });
    t.equal(r.code, 1);
    t.equal(r.stdout, `{"cniVersion":"1.1.0","code":${code},"msg":"meshlane datapath is not installed on this node","details":"no pinned maps in /sys/fs/bpf/meshlane"}\n`);
  }
});

t.test('a handler throwing a plain Error is 999 without a stack on stdout', async (t) => {
  for (const command of ['ADD', 'DEL', 'CHECK'] as const) {
    const boom = (): Promise<never> => Promise.reject(new Error('cannot open map /sys/fs/bpf/meshlane/pods'));
    const r = await run({
      env: { ...baseEnv, CNI_COMMAND: command },
      stdin: conf({}, '0.4.0'),
      handlers: { add: boom, del: boom, check: boom },
    });
    t.equal(r.code, 1, command);
    t.same(r.json, { cniVersion: '0.4.0', code: 999, msg: INTERNAL_ERROR_MSG, details: 'cannot open map /sys/fs/bpf/meshlane/pods' });
    t.notMatch(r.stdout, STACK_RE, 'no stack frames on stdout');
    const logged = r.lines.find((l) => l.msg === 'handler failed with an unexpected error');
    t.match(String(logged?.fields['stack']), /Error: cannot open map/, 'the stack goes to the log');
    t.equal(r.loggers[0]?.logger.closed, 1);
  }
  const sync = await run({
    env: baseEnv,
    stdin: conf(),
    handlers: {
      add: () => {
        throw new TypeError("Cannot read properties of undefined (reading 'ips')");
      },
    },
  });
  t.equal(sync.json?.['details'], "TypeError: Cannot read properties of undefined (reading 'ips')", 'a synchronous throw too');
  const str = await run({ env: baseEnv, stdin: conf(), handlers: { add: () => Promise.reject('just a string') } });
  t.equal(str.json?.['details'], 'just a string');
});

t.test('a CniError from a handler passes through unchanged', async (t) => {
  const r = await run({ env: baseEnv, stdin: conf(), handlers: { add: () => Promise.reject(new CniError(11, 'kube-apiserver unreachable', 'try again')) } });
  t.same(r.json, { cniVersion: '1.0.0', code: 11, msg: 'kube-apiserver unreachable', details: 'try again' });
});

t.test('env errors come first, in the request\'s version when the config says it', async (t) => {
  const r = await run({ env: { ...baseEnv, CNI_IFNAME: undefined }, stdin: conf({}, '0.4.0') });
  t.equal(r.code, 1);
  t.same(r.json, { cniVersion: '0.4.0', code: 4, msg: 'required env variables [CNI_IFNAME] missing' });
  t.equal(r.loggers[0]?.config['name'], 'k8s-pod-network', 'logged with the config\'s logger');
  const both = await run({ env: { ...baseEnv, CNI_COMMAND: 'FOO' }, stdin: '{bad json' });
  t.same(both.json, { cniVersion: '1.1.0', code: 4, msg: 'unknown CNI_COMMAND', details: 'CNI_COMMAND is "FOO"; known: ADD, DEL, CHECK, GC, STATUS, VERSION' });
  t.same(both.loggers[0]?.fields, { command: 'FOO', containerId: 'c0ffee1234', pod: 'default/web-0' });
  const missing = await run({ env: {}, stdin: conf() });
  t.same(missing.json, { cniVersion: '1.0.0', code: 4, msg: 'required env variables [CNI_COMMAND] missing' });
  t.same(missing.loggers[0]?.fields, { command: '' });
});

t.test('a config that cannot be parsed: logged with createLogger({})', async (t) => {
  const r = await run({ env: baseEnv, stdin: '{"cniVersion":"1.0.0","name":"x","type":"meshlane","log_level":"debug"' });
  t.equal(r.code, 1);
  t.equal(r.json?.['code'], 6);
  t.equal(r.json?.['cniVersion'], '1.1.0', 'version unknown: the latest');
  t.same(r.loggers.map((l) => l.config), [{}]);
  t.same(r.lines.map((l) => `${l.level} ${l.msg}`), ['error CNI call failed']);
  t.has(r.lines[0]?.fields, { code: 6, msg: 'invalid JSON in network config', command: 'ADD', containerId: 'c0ffee1234', pod: 'default/web-0' });
  const typeless = await run({ env: baseEnv, stdin: '{"cniVersion":"0.3.1","name":"x"}' });
  t.same(typeless.json, { cniVersion: '0.3.1', code: 7, msg: 'missing type', details: 'the config names no plugin type' }, 'a readable version is used in the error');
});

t.test('the logger factory refusing the config (bad log_level) is the call\'s error', async (t) => {
  const made: Array<Readonly<Record<string, unknown>>> = [];
  const fallback = new RecordingLogger();
  const r = await run({
    env: baseEnv,
    stdin: conf({ log_level: 5 }),
    createLogger: (config) => {
      made.push(config);
      if (config['log_level'] !== undefined) throw new CniError(7, 'log_level is not one of error, warn, info, debug', 'got 5');
      return fallback;
    },
  });
  t.equal(r.code, 1);
  t.same(r.json, { cniVersion: '1.0.0', code: 7, msg: 'log_level is not one of error, warn, info, debug', details: 'got 5' });
  t.equal(made.length, 2);
  t.same(made[1], {}, 'then the default logger');
  t.equal(fallback.lines[0]?.msg, 'CNI call failed');
  t.equal(fallback.closed, 1);

  const never = await run({
    env: baseEnv,
    stdin: conf(),
    createLogger: () => {
      throw new Error('winston exploded');
    },
  });
  t.same(never.json, { cniVersion: '1.0.0', code: 999, msg: INTERNAL_ERROR_MSG, details: 'winston exploded' }, 'no logger at all still answers');
});

t.test('stdout: a failing write is not a crash and not a second document', async (t) => {
  class Broken extends Writable {
    writes = 0;
    override _write(_c: Buffer, _e: BufferEncoding, cb: (err?: Error | null) => void): void {
      this.writes++;
      cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    }
  }
  const logger = new RecordingLogger();
  for (const [command, env] of [
    ['ADD', baseEnv],
    ['VERSION', { CNI_COMMAND: 'VERSION' }],
    ['error', { CNI_COMMAND: 'ADD' }],
  ] as const) {
    const out = new Broken();
    const code = await runCni({ env, stdin: stdinOf(conf()), stdout: out }, passThroughHandlers, { createLogger: () => logger });
    t.equal(code, 1, command);
    t.equal(out.writes, 1, 'one attempt only');
  }
  t.ok(logger.lines.some((l) => /cannot write/.test(l.msg)));
  t.equal(logger.closed, 3);
});

t.test('runCni resolves only after stdout has taken the document', async (t) => {
  let done = false;
  const out = new Writable({
    write(_chunk, _enc, cb) {
      setTimeout(() => {
        done = true;
        cb();
      }, 20);
    },
  });
  const code = await runCni({ env: { CNI_COMMAND: 'VERSION' }, stdin: stdinOf(undefined), stdout: out }, passThroughHandlers, { createLogger: () => new RecordingLogger() });
  t.equal(code, 0);
  t.ok(done, 'the write callback ran before runCni resolved');
});
