// What the main script (a CNI call) takes from node:net, node:crypto and the
// global `performance`, without their cost at start: node:net loads streams and
// sockets, and its isIPv6 is one large regular expression whose first use cost
// 35-40 ms here (compiled on first exec); node:crypto loads every cipher binding
// (randomBytes(size) reads /dev/urandom instead);
// perf_hooks its own tree. scripts/build.mjs points the main script's imports of
// those builtins here. An import of another name from them fails the build (no
// such export), never the call.
//
// isIPv4/isIPv6/isIP accept exactly what Node's do (its internal/net.js
// patterns: dotted quads without leading zeros; the RFC 4291 text forms with an
// optional embedded IPv4 tail and %zone); test/sys/lazy-builtins.test.ts checks
// them against node:net.
import { closeSync, openSync, readSync } from 'node:fs';

let crypto;
const cryptoModule = () => (crypto ??= require('node:crypto'));

const V4_PART = /^(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])$/;
const V6_GROUP = /^[0-9a-fA-F]{1,4}$/;
const ZONE = /^[0-9a-zA-Z\-.:]+$/;

export function isIPv4(input) {
  const s = `${input}`;
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => V4_PART.test(p));
}

export function isIPv6(input) {
  let s = `${input}`;
  const pct = s.indexOf('%');
  if (pct >= 0) {
    if (!ZONE.test(s.slice(pct + 1))) return false;
    s = s.slice(0, pct);
  }
  const lastColon = s.lastIndexOf(':');
  if (lastColon < 0) return false;
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    if (!isIPv4(tail)) return false;
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const dbl = s.indexOf('::');
  if (dbl < 0) {
    const groups = s.split(':');
    return groups.length === 8 && groups.every((g) => V6_GROUP.test(g));
  }
  if (s.indexOf('::', dbl + 1) >= 0) return false;
  const head = s.slice(0, dbl);
  const rest = s.slice(dbl + 2);
  const groups = [...(head === '' ? [] : head.split(':')), ...(rest === '' ? [] : rest.split(':'))];
  return groups.length <= 7 && groups.every((g) => V6_GROUP.test(g));
}

export function isIP(input) {
  return isIPv4(input) ? 4 : isIPv6(input) ? 6 : 0;
}

/** randomBytes(size) read from /dev/urandom (the same kernel source) without loading node:crypto; other forms go to it. */
export function randomBytes(...args) {
  if (args.length !== 1 || typeof args[0] !== 'number') return cryptoModule().randomBytes(...args);
  const buf = Buffer.alloc(args[0]);
  const fd = openSync('/dev/urandom', 'r');
  try {
    for (let off = 0; off < buf.length; ) off += readSync(fd, buf, off, buf.length - off, null);
  } finally {
    closeSync(fd);
  }
  return buf;
}
/** performance.now() for durations, without perf_hooks. */
export const meshlaneNow = () => process.uptime() * 1000;
