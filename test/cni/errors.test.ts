import t from 'tap';
import {
  CniError,
  CniErrorCode,
  INTERNAL_ERROR_MSG,
  MAX_ERROR_TEXT_LENGTH,
  describeThrown,
  pluginError,
  toCniError,
} from '../../src/cni/errors.js';

t.test('well-known codes are the spec numbers', async (t) => {
  t.same(CniErrorCode, {
    IncompatibleVersion: 1,
    UnsupportedField: 2,
    UnknownContainer: 3,
    InvalidEnvironment: 4,
    IoFailure: 5,
    DecodingFailure: 6,
    InvalidNetworkConfig: 7,
    TryAgainLater: 11,
    PluginNotAvailable: 50,
    PluginNotAvailableLimitedConnectivity: 51,
    Internal: 999,
  });
});

t.test('the error is the wire format', async (t) => {
  const e = new CniError(7, 'prevResult.ips[0].address is missing');
  t.same(e.toJson('1.0.0'), { cniVersion: '1.0.0', code: 7, msg: 'prevResult.ips[0].address is missing' }, 'no details key when empty');
  t.equal(JSON.stringify(e.toJson('1.1.0')), '{"cniVersion":"1.1.0","code":7,"msg":"prevResult.ips[0].address is missing"}', 'key order cniVersion, code, msg');
  const d = new CniError(50, 'datapath not installed', 'no pinned maps under /sys/fs/bpf/meshlane');
  t.same(d.toJson('1.1.0'), { cniVersion: '1.1.0', code: 50, msg: 'datapath not installed', details: 'no pinned maps under /sys/fs/bpf/meshlane' });
  t.equal(d.message, 'datapath not installed: no pinned maps under /sys/fs/bpf/meshlane');
  t.ok(d instanceof Error);
  t.equal(d.name, 'CniError');
});

t.test('codes must be non-negative integers; plugin codes start at 100', async (t) => {
  t.throws(() => new CniError(-1, 'x'), TypeError);
  t.throws(() => new CniError(1.5, 'x'), TypeError);
  t.throws(() => pluginError(99, 'x'), /plugin error codes start at 100, got 99/);
  t.equal(pluginError(100, 'x').code, 100);
  t.equal(pluginError(142, 'x', 'y').details, 'y');
});

t.test('a CniError passes through toCniError unchanged', async (t) => {
  const e = new CniError(11, 'try again later');
  t.equal(toCniError(e), e);
});

t.test('anything else becomes 999 with the message, never the stack', async (t) => {
  const plain = new Error('boom at the map');
  const e = toCniError(plain);
  t.equal(e.code, 999);
  t.equal(e.msg, INTERNAL_ERROR_MSG);
  t.match(e.msg, /bug/);
  t.equal(e.details, 'boom at the map');
  t.notMatch(JSON.stringify(e.toJson('1.0.0')), /at .*\.(ts|js):\d+/, 'no stack frames');
  t.equal(toCniError(new TypeError('x is not a function')).details, 'TypeError: x is not a function');
  t.equal(toCniError('a string').details, 'a string');
  t.equal(toCniError(42).details, 'non-error value thrown: 42');
  t.equal(toCniError(undefined).details, 'non-error value thrown: undefined');
  const weird = { toString: () => { throw new Error('no'); } };
  t.equal(describeThrown(weird), 'non-error value thrown');
});

t.test('msg and details are bounded', async (t) => {
  const e = new CniError(100, 'm'.repeat(MAX_ERROR_TEXT_LENGTH + 10), 'd'.repeat(MAX_ERROR_TEXT_LENGTH * 2));
  t.equal(e.msg.length, MAX_ERROR_TEXT_LENGTH + '... (truncated)'.length);
  t.ok(e.details?.endsWith('... (truncated)'));
});
