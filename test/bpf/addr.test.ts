import t from 'tap';
import { fromMapped16, toMapped16 } from '../../src/bpf/addr.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

t.equal(hex(toMapped16('10.1.2.3')), '00000000000000000000ffff0a010203');
t.equal(hex(toMapped16('::1')), '00000000000000000000000000000001');
t.equal(hex(toMapped16('fd00:213::5')), 'fd000213000000000000000000000005');
t.equal(hex(toMapped16('::ffff:10.1.2.3')), '00000000000000000000ffff0a010203');
t.equal(hex(toMapped16('2001:db8:0:0:1:0:0:1')), '20010db8000000000001000000000001');
t.equal(hex(toMapped16('fe80::1%eth0')), 'fe800000000000000000000000000001');
t.throws(() => toMapped16('10.1.2'), /not an IP/);
t.throws(() => toMapped16('hello'), /not an IP/);
for (const ip of ['10.1.2.3', '::1', '::', 'fd00:213::5', '2001:db8::1:0:0:1', '1:2:3:4:5:6:7:8', 'fe80::']) {
  t.equal(fromMapped16(toMapped16(ip)), ip, `round trip ${ip}`);
}
