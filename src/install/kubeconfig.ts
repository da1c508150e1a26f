// The kubeconfig the plugin uses to read pods, written by the installer from its
// service account (the plugin runs on the host, outside the DaemonSet pod, so it
// cannot read the pod's projected token). Rewritten when the token rotates.
// The same content as Istio's installer writes (kubeconfig-tls / -skip-tls).
import { readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { join } from 'node:path';
import { errnoOf } from '../describe-error.js';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeconfigInput {
  server: string;
  token: string;
  /** PEM of the cluster CA; when absent (tests only), insecure-skip-tls-verify is written. */
  caPem?: Buffer | undefined;
}

export class ServiceAccountError extends Error {
  override name = 'ServiceAccountError';
}

/**
 * The kubeconfig as JSON (valid YAML too, so kubectl reads it): the plugin then
 * parses it without loading a YAML parser on the ADD path.
 */
export function renderKubeconfig(input: KubeconfigInput): string {
  const cluster: Record<string, unknown> = { server: input.server };
  if (input.caPem) cluster['certificate-authority-data'] = input.caPem.toString('base64');
  else cluster['insecure-skip-tls-verify'] = true;
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'local', cluster }],
    contexts: [{ name: 'meshlane-context', context: { cluster: 'local', user: 'meshlane' } }],
    'current-context': 'meshlane-context',
    users: [{ name: 'meshlane', user: { token: input.token } }],
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

export function apiServerUrl(env: Readonly<Record<string, string | undefined>>): string {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'] ?? '443';
  if (!host) throw new ServiceAccountError('KUBERNETES_SERVICE_HOST is not set: meshlane install writes the plugin kubeconfig only when it runs in a Kubernetes pod');
  if (!/^\d{1,5}$/.test(port)) throw new ServiceAccountError(`KUBERNETES_SERVICE_PORT ${JSON.stringify(port)} is not a port`);
  return `https://${isIPv6(host) ? `[${host}]` : host}:${port}`;
}

export function kubeconfigFromServiceAccount(env: Readonly<Record<string, string | undefined>>, saDir = SERVICE_ACCOUNT_DIR): KubeconfigInput {
  const server = apiServerUrl(env);
  let token: string;
  try {
    token = readFileSync(join(saDir, 'token'), 'utf8').trim();
  } catch (err) {
    throw new ServiceAccountError(`cannot read the service account token in ${saDir}: ${errnoOf(err) ?? 'error'}; mount the service account (automountServiceAccountToken)`);
  }
  if (token === '') throw new ServiceAccountError(`the service account token in ${saDir} is empty`);
  let caPem: Buffer;
  try {
    caPem = readFileSync(join(saDir, 'ca.crt'));
  } catch (err) {
    // No silent fallback to an unverified connection: the token would go to whoever answers.
    throw new ServiceAccountError(`cannot read the cluster CA ${join(saDir, 'ca.crt')}: ${errnoOf(err) ?? 'error'}`);
  }
  return { server, token, caPem };
}
