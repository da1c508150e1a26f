// The plugin's entry in the conflist: every field validated, defaults filled.
// Unknown fields are ignored (the runtime and other tools add their own); a field
// of the wrong type is CNI code 7 naming the field.
import { isAbsolute } from 'node:path';
import { CniError, CniErrorCode } from '../cni/errors.js';
import type { LogLevel } from '../log/logger.js';
import { parseLogConfig } from './log-config.js';

export interface PluginConfig {
  logLevel: LogLevel;
  logFile: string | undefined;
  bpfPinDir: string;
  cgroupRoot: string;
  stateDir: string;
  kubeconfig: string;
  excludeNamespaces: string[];
  /** Total time for Kubernetes API lookups of one ADD, retries included. */
  kubeApiTimeoutMs: number;
  /** Capture DNS for every meshed pod, whatever its proxy says. */
  dnsCapture: boolean;
}

export const DEFAULTS = {
  bpf_pin_dir: '/sys/fs/bpf/meshlane',
  cgroup_root: '/sys/fs/cgroup',
  state_dir: '/var/lib/meshlane',
  kubeconfig: '/var/run/meshlane/kubeconfig',
  exclude_namespaces: ['kube-system'],
  kube_api_timeout_seconds: 30,
  dns_capture: false,
} as const;

function invalid(field: string, value: unknown, want: string): CniError {
  const shown = JSON.stringify(value)?.slice(0, 120) ?? String(value);
  return new CniError(CniErrorCode.InvalidNetworkConfig, `invalid ${field} ${shown} in the meshlane plugin config: ${want}`);
}

function absPath(conf: Readonly<Record<string, unknown>>, field: keyof typeof DEFAULTS): string {
  const v = conf[field] ?? DEFAULTS[field];
  if (typeof v !== 'string' || !isAbsolute(v) || v.length > 4096 || v.includes('\0')) throw invalid(field, v, 'use an absolute path');
  return v;
}

function integer(conf: Readonly<Record<string, unknown>>, field: keyof typeof DEFAULTS, min: number, max: number): number {
  const v = conf[field] ?? DEFAULTS[field];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw invalid(field, v, `use a whole number from ${min} to ${max}`);
  return v;
}

const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function parsePluginConfig(conf: Readonly<Record<string, unknown>>): PluginConfig {
  const log = parseLogConfig(conf);
  const ns = conf['exclude_namespaces'] ?? DEFAULTS.exclude_namespaces;
  if (!Array.isArray(ns) || ns.length > 1000 || !ns.every((n): n is string => typeof n === 'string' && NAMESPACE.test(n))) {
    throw invalid('exclude_namespaces', ns, 'use a list of namespace names');
  }
  const dns = conf['dns_capture'] ?? DEFAULTS.dns_capture;
  if (typeof dns !== 'boolean') throw invalid('dns_capture', dns, 'use true or false');
  return {
    logLevel: log.level,
    logFile: log.file,
    bpfPinDir: absPath(conf, 'bpf_pin_dir'),
    cgroupRoot: absPath(conf, 'cgroup_root'),
    stateDir: absPath(conf, 'state_dir'),
    kubeconfig: absPath(conf, 'kubeconfig'),
    excludeNamespaces: [...ns],
    kubeApiTimeoutMs: integer(conf, 'kube_api_timeout_seconds', 1, 600) * 1000,
    dnsCapture: dns,
  };
}
