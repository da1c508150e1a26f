// Network namespaces and links: list, make, and the `ip` command itself.
import { execa } from 'execa';

const NAME = /^[A-Za-z0-9_-]{1,15}$/;

export async function ip(args: readonly string[]): Promise<string> {
  const r = await execa('ip', [...args], { reject: false });
  if (r.exitCode !== 0) {
    throw new Error(`ip ${args.join(' ')} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
  }
  return r.stdout;
}

export async function listNetns(): Promise<string[]> {
  const out = await ip(['netns', 'list']);
  return out.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((n) => n !== '');
}

export async function listLinks(): Promise<string[]> {
  const out = await ip(['-o', 'link', 'show']);
  return out
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? '')
    .filter((n) => n !== '');
}

export async function addNetns(name: string): Promise<string> {
  if (!NAME.test(name)) throw new Error(`bad netns name '${name}'`);
  await ip(['netns', 'add', name]);
  await ip(['-n', name, 'link', 'set', 'lo', 'up']);
  return `/var/run/netns/${name}`;
}
