// A small libcni: runs a conflist's plugins as a container runtime does.
// ADD in order, each getting the previous plugin's result as prevResult; the
// final result is cached; DEL in reverse order, each getting the cached result
// (libcni's behaviour), or none at all (containerd's second DEL on remove).
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';

export type Json = Record<string, unknown>;

export interface Conflist {
  cniVersion: string;
  name: string;
  plugins: Json[];
}

export interface Runtime {
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS pairs. */
  args?: Record<string, string>;
  /** Directories searched for plugin binaries, in order (CNI_PATH). */
  binDirs: string[];
  /** runtimeConfig values offered for the capabilities a plugin declares. */
  capabilityArgs?: Json;
  /**
   * Run the plugins inside this named netns instead of the host's (a sandbox
   * node's netns), so that host-side links such as the bridge stay out of the host.
   */
  runInNetns?: string;
  /** Environment over the default (PATH as this process has it): `{ PATH: '' }` runs the plugins with no tool reachable. */
  env?: Record<string, string>;
}

export class PluginError extends Error {
  constructor(
    readonly plugin: string,
    readonly command: string,
    readonly exitCode: number | undefined,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(`${plugin} ${command} failed (exit ${exitCode}): ${stdout.trim() || stderr.trim()}`);
  }
}

function findPlugin(type: string, dirs: string[]): string {
  for (const d of dirs) {
    const p = join(d, type);
    if (existsSync(p)) return p;
  }
  throw new Error(`plugin '${type}' not found in ${dirs.join(':')}`);
}

/** `name` found on this process's PATH (so a plugin run with another PATH still starts through it). */
function onPath(name: string): string {
  for (const d of (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    if (d && existsSync(join(d, name))) return join(d, name);
  }
  return name;
}

function pluginConfig(list: Conflist, plugin: Json, rt: Runtime, prevResult: Json | undefined): Json {
  const conf: Json = { ...plugin, cniVersion: list.cniVersion, name: list.name };
  const caps = plugin['capabilities'];
  if (caps && typeof caps === 'object' && rt.capabilityArgs) {
    const runtimeConfig: Json = {};
    for (const [cap, on] of Object.entries(caps as Json)) {
      if (on === true && cap in rt.capabilityArgs) runtimeConfig[cap] = rt.capabilityArgs[cap];
    }
    if (Object.keys(runtimeConfig).length > 0) conf['runtimeConfig'] = runtimeConfig;
  }
  if (prevResult) conf['prevResult'] = prevResult;
  return conf;
}

export async function execPlugin(command: string, list: Conflist, plugin: Json, rt: Runtime, prevResult?: Json): Promise<Json | undefined> {
  const type = String(plugin['type']);
  const bin = findPlugin(type, rt.binDirs);
  const args = Object.entries(rt.args ?? {}).map(([k, v]) => `${k}=${v}`).join(';');
  // nsenter switches only the network namespace; `ip netns exec` would also
  // remount /sys and hide /sys/fs/bpf and /sys/fs/cgroup from the plugin.
  const [file, argv] = rt.runInNetns ? [onPath('nsenter'), [`--net=/var/run/netns/${rt.runInNetns}`, '--', bin]] : [bin, []];
  const r = await execa(file, argv, {
    input: JSON.stringify(pluginConfig(list, plugin, rt, prevResult)),
    env: {
      CNI_COMMAND: command,
      CNI_CONTAINERID: rt.containerId,
      CNI_NETNS: rt.netns,
      CNI_IFNAME: rt.ifname,
      CNI_ARGS: args,
      CNI_PATH: rt.binDirs.join(':'),
      PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      ...rt.env,
    },
    extendEnv: false,
    reject: false,
    timeout: 60_000,
  });
  if (r.exitCode !== 0) throw new PluginError(type, command, r.exitCode, r.stdout, r.stderr);
  const out = r.stdout.trim();
  return out === '' ? undefined : (JSON.parse(out) as Json);
}

/** ADD through the whole list; returns the final (cached) result. */
export async function chainAdd(list: Conflist, rt: Runtime): Promise<Json> {
  let prev: Json | undefined;
  for (const plugin of list.plugins) {
    prev = await execPlugin('ADD', list, plugin, rt, prev);
  }
  if (!prev) throw new Error('the chain returned no result');
  return prev;
}

/** DEL through the list in reverse; `cached` is the ADD result or undefined. Runs every plugin, then throws the first error. */
export async function chainDel(list: Conflist, rt: Runtime, cached: Json | undefined): Promise<void> {
  let first: unknown;
  for (const plugin of [...list.plugins].reverse()) {
    try {
      await execPlugin('DEL', list, plugin, rt, cached);
    } catch (err) {
      first ??= err;
    }
  }
  if (first) throw first;
}

export async function chainCheck(list: Conflist, rt: Runtime, cached: Json): Promise<void> {
  for (const plugin of list.plugins) {
    await execPlugin('CHECK', list, plugin, rt, cached);
  }
}
