// What the main script (a CNI call) takes from node:net, node:crypto and the
// global `performance`, loaded on first use: each of them loads a tree of Node's
// internal modules (net: streams and sockets; crypto: every cipher binding;
// perf_hooks) that VERSION and the pass-through path never need. scripts/build.mjs
// points the main script's imports of those builtins here. An import of another
// name from them fails the build (no such export), never the call.
let net;
let crypto;
const netModule = () => (net ??= require('node:net'));
const cryptoModule = () => (crypto ??= require('node:crypto'));

export const isIP = (s) => netModule().isIP(s);
export const isIPv4 = (s) => netModule().isIPv4(s);
export const isIPv6 = (s) => netModule().isIPv6(s);
export const randomBytes = (...args) => cryptoModule().randomBytes(...args);
/** performance.now() for durations, without perf_hooks. */
export const meshlaneNow = () => process.uptime() * 1000;
