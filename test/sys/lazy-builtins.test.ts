// The main script's isIPv4/isIPv6/isIP (scripts/bundle/lazy-builtins.mjs, used
// instead of node:net's to spare a CNI call its start-up) answer exactly as
// node:net does: known forms, then a seeded random walk over the characters
// addresses are made of.
import { isIP as nodeIsIP, isIPv4 as nodeIsIPv4, isIPv6 as nodeIsIPv6 } from 'node:net';
import t from 'tap';
// @ts-expect-error: a plain .mjs module of the build, without types
import * as lazy from '../../scripts/bundle/lazy-builtins.mjs';

const { isIP, isIPv4, isIPv6 } = lazy as { isIP(s: string): number; isIPv4(s: string): boolean; isIPv6(s: string): boolean };

const known = [
  '', '0.0.0.0', '1.2.3.4', '255.255.255.255', '256.1.1.1', '01.2.3.4', '1.2.3', '1.2.3.4.5', '1..3.4', ' 1.2.3.4', '1.2.3.4 ',
  '::', '::1', '1::', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '1::2:3:4:5:6:7:8', ':::', '1:::2',
  '1::2::3', ':1:2:3:4:5:6:7', '1:2:3:4:5:6:7:', '12345::', 'g::', 'fe80::1%eth0', 'fe80::1%', 'fe80::1%a b', '::ffff:10.0.0.1', '::1.2.3.4',
  '1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:7:1.2.3.4', '1:2:3:4:5::1.2.3.4', '1:2:3:4:5:6::1.2.3.4', '::ffff:256.0.0.1', '::ffff:1.2.3',
  'fd00:213:130::5', 'FD00::ABCD', '1.2.3.4%eth0', '::%1', '1:2:3:4:5:6:7:8%z', ':', '.', '1.2.3.4/24', 'fd00::/64',
];

t.test('known forms', async (t) => {
  for (const s of known) {
    t.equal(isIPv4(s), nodeIsIPv4(s), `isIPv4(${JSON.stringify(s)})`);
    t.equal(isIPv6(s), nodeIsIPv6(s), `isIPv6(${JSON.stringify(s)})`);
    t.equal(isIP(s), nodeIsIP(s), `isIP(${JSON.stringify(s)})`);
  }
});

t.test('a seeded random walk agrees with node:net', async (t) => {
  let seed = 0x5eed;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const alphabet = '0123456789abcdefABCDEFg:::...%z-';
  const wrong: string[] = [];
  for (let i = 0; i < 200_000; i++) {
    // Start from a valid address now and then, and damage it a little.
    let s = rnd(3) === 0 ? (known[rnd(known.length)] ?? '') : Array.from({ length: 1 + rnd(24) }, () => alphabet[rnd(alphabet.length)]).join('');
    if (rnd(2) === 0 && s.length > 0) s = s.slice(0, rnd(s.length)) + (alphabet[rnd(alphabet.length)] ?? '') + s.slice(rnd(s.length));
    if (isIPv4(s) !== nodeIsIPv4(s) || isIPv6(s) !== nodeIsIPv6(s) || isIP(s) !== nodeIsIP(s)) wrong.push(s);
  }
  t.same(wrong.slice(0, 20), [], 'no input on which they differ');
});

t.test('randomBytes(size) gives that many bytes, different each time', async (t) => {
  const { randomBytes } = lazy as { randomBytes(n: number): Buffer };
  const a = randomBytes(16);
  const b = randomBytes(16);
  t.equal(a.length, 16);
  t.notSame(a, b);
  t.equal(randomBytes(0).length, 0);
});
