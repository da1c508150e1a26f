import t from 'tap';
import { CniError } from '../../src/cni/errors.js';
import { DEFAULT_LOG_FILE, parseLogConfig } from '../../src/plugin/log-config.js';

t.same(parseLogConfig({}), { level: 'info', file: DEFAULT_LOG_FILE });
t.same(parseLogConfig({ log_level: 'debug', log_file: '/tmp/x.log' }), { level: 'debug', file: '/tmp/x.log' });
t.same(parseLogConfig({ log_file: '' }), { level: 'info', file: undefined }, '"" means stderr only');

for (const bad of [{ log_level: 'loud' }, { log_level: 3 }, { log_file: 'relative.log' }, { log_file: 7 }, { log_file: 'a\0b' }]) {
  t.test(`refuses ${JSON.stringify(bad)}`, async (t) => {
    const err = t.throws(() => parseLogConfig(bad)) as unknown;
    t.ok(err instanceof CniError);
    t.match(err, { code: 7, msg: new RegExp(Object.keys(bad)[0] as string) });
  });
}
