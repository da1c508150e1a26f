// GET one pod from the Kubernetes API: the plugin's fallback when the runtime did
// not pass the pod's annotations (DESIGN.md "The CNI plugin"), and its source for
// what no annotation says (containers, runAsUser, labels).
//
// Retry policy (istio-cni tries 30 times, 1 s apart, then fails ADD):
// - retried until the deadline or `maxAttempts`: connection errors (refused,
//   reset, unreachable, DNS), per-attempt timeouts, HTTP 429, 5xx, and 404 (the
//   pod the kubelet is starting may not be visible yet through an API server
//   whose watch cache lags; a pod really deleted gets 'not-found' at the deadline,
//   and its sandbox is being torn down anyway);
// - failed at once: 401 ('unauthorized'), 403 ('forbidden'), TLS verification
//   errors ('tls': a wrong CA does not heal by retrying), any other status and
//   any answer that is not a JSON Pod of that namespace and name ('bad-response');
// - between attempts: `retryIntervalMs` with +-20% jitter (many pods of a node
//   retry together when the API server is down), or the server's Retry-After when
//   longer; a wait that would end past the deadline is not started: the call fails
//   at once with what the last attempt said;
// - each attempt has its own timeout (`attemptTimeoutMs`, cut to the time left)
//   covering connect, TLS, headers and the whole body.
//
// No proxy: the API server is in-cluster, and Node's https module ignores
// HTTPS_PROXY/NO_PROXY (a fresh agent per call, no keep-alive: the CNI process
// exits right after).
//
// Secrets: the token goes only into the Authorization header. Messages name the
// server's host, the status and Node's error code; text from the server (a
// Status message) is cut short and scrubbed of the token.
import { request } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { KubeApiError } from './errors.js';
import type { KubeApiErrorKind } from './errors.js';
import { currentToken } from './kubeconfig.js';
import type { KubeAccess } from './kubeconfig.js';

/** No new attempt starts with less of the deadline left than this (or than the attempt timeout, if smaller). */
const MIN_ATTEMPT_MS = 250;

export interface GetPodOptions {
  /** Total time for all attempts and waits, in ms. Required: the CNI call must end. */
  deadlineMs: number;
  /** Wait between attempts (default 1000 ms, as istio-cni). */
  retryIntervalMs?: number;
  /** Attempts at most (default 30, as istio-cni). */
  maxAttempts?: number;
  /** One attempt's limit, cut to the time left (default 5000 ms). */
  attemptTimeoutMs?: number;
  /** Largest response body accepted (default 4 MiB). */
  maxResponseBytes?: number;
  signal?: AbortSignal;
  /** Called after every attempt (for logging); `error` holds no secret. Exceptions from it are ignored. */
  onAttempt?: (info: { attempt: number; status?: number; error?: string }) => void;
}

export const DEFAULT_RETRY_INTERVAL_MS = 1000;
export const DEFAULT_MAX_ATTEMPTS = 30;
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 5000;
export const DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A namespace name as Kubernetes accepts it: an RFC 1123 label, at most 63 characters. */
export function isValidNamespace(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 63 && DNS1123_LABEL.test(value);
}

/** A pod name as Kubernetes accepts it: an RFC 1123 subdomain, at most 253 characters. */
export function isValidPodName(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 253 && DNS1123_SUBDOMAIN.test(value);
}

/** A hostile name, printable and short, for a message. */
function showName(value: unknown): string {
  if (typeof value !== 'string') return typeof value;
  const s = value.length > 64 ? `${value.slice(0, 64)}...` : value;
  return `${JSON.stringify(s)}${value.length > 64 ? ` (${value.length} characters)` : ''}`;
}

type Outcome =
  | { type: 'ok'; pod: Record<string, unknown>; status: number }
  | { type: 'http'; status: number; retryAfterMs: number | undefined; detail: string }
  | { type: 'bad'; status: number; detail: string }
  | { type: 'network'; code: string; detail: string; tls: boolean }
  | { type: 'timeout'; detail: string }
  | { type: 'aborted' };

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

function isTlsError(code: string): boolean {
  return TLS_CODES.has(code) || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_');
}

class AttemptTimeout extends Error {}
class AttemptAborted extends Error {}

function scrub(text: string, token: string | undefined): string {
  let t = text.replace(/[\r\n\t]+/g, ' ');
  if (token) t = t.split(token).join('[redacted]');
  t = t.replace(/\bBearer\s+\S+/gi, 'Bearer [redacted]');
  return t.length > 200 ? `${t.slice(0, 200)}...` : t;
}

/** The message of a Kubernetes Status body, if that is what the body is. */
function statusMessage(body: Buffer, token: string | undefined): string {
  try {
    const doc = JSON.parse(body.toString('utf8')) as unknown;
    if (typeof doc === 'object' && doc !== null && (doc as Record<string, unknown>).kind === 'Status') {
      const msg = (doc as Record<string, unknown>).message;
      if (typeof msg === 'string' && msg !== '') return `: ${scrub(msg, token)}`;
    }
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    // not JSON: say nothing of it
  }
  return '';
}

function parseRetryAfter(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,6}$/.test(value.trim())) return undefined;
  return Number(value.trim()) * 1000;
}

function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const media = value.split(';', 1)[0]!.trim().toLowerCase();
  return media === 'application/json';
}

interface AttemptParams {
  access: KubeAccess;
  path: string;
  token: string | undefined;
  timeoutMs: number;
  maxBytes: number;
  namespace: string;
  name: string;
  signal: AbortSignal | undefined;
}

function attempt(p: AttemptParams): Promise<Outcome> {
  return new Promise<Outcome>((resolveOutcome) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': 'meshlane-cni' };
    if (p.token !== undefined) headers.Authorization = `Bearer ${p.token}`;
    const host = p.access.server.hostname.replace(/^\[(.*)\]$/, '$1');
    const req = request({
      method: 'GET',
      host,
      port: p.access.server.port === '' ? 443 : Number(p.access.server.port),
      path: p.path,
      headers,
      agent: false,
      ca: p.access.ca,
      cert: p.access.clientCert,
      key: p.access.clientKey,
      rejectUnauthorized: !p.access.insecureSkipTlsVerify,
      servername: p.access.tlsServerName,
      minVersion: 'TLSv1.2',
    });
    const onAbort = (): void => {
      req.destroy(new AttemptAborted('aborted'));
    };
    const finish = (o: Outcome): void => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      p.signal?.removeEventListener('abort', onAbort);
      resolveOutcome(o);
      req.destroy();
    };
    const fail = (err: unknown): void => {
      if (err instanceof AttemptTimeout) return finish({ type: 'timeout', detail: `no complete answer within ${p.timeoutMs} ms` });
      if (err instanceof AttemptAborted) return finish({ type: 'aborted' });
      const e = err as { code?: unknown; message?: unknown };
      const code = typeof e.code === 'string' ? e.code : 'ERR_UNKNOWN';
      const message = typeof e.message === 'string' ? e.message : String(err);
      finish({ type: 'network', code, detail: `${scrub(message, p.token)} (${code})`, tls: isTlsError(code) });
    };
    timer = setTimeout(() => req.destroy(new AttemptTimeout('timeout')), p.timeoutMs);
    if (p.signal) {
      if (p.signal.aborted) {
        finish({ type: 'aborted' });
        return;
      }
      p.signal.addEventListener('abort', onAbort, { once: true });
    }
    req.on('error', fail);
    req.on('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > p.maxBytes) {
        return finish({ type: 'bad', status, detail: `response of ${declared} bytes is larger than ${p.maxBytes}` });
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > p.maxBytes) return finish({ type: 'bad', status, detail: `response is larger than ${p.maxBytes} bytes` });
        chunks.push(chunk);
      });
      res.on('error', fail);
      res.on('close', () => {
        if (!res.complete) fail(Object.assign(new Error('connection closed before the response was complete'), { code: 'ECONNRESET' }));
      });
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        if (status !== 200) {
          return finish({ type: 'http', status, retryAfterMs: parseRetryAfter(res.headers['retry-after']), detail: statusMessage(body, p.token) });
        }
        if (!isJsonContentType(res.headers['content-type'])) {
          return finish({ type: 'bad', status, detail: `content type is ${JSON.stringify(scrub(res.headers['content-type'] ?? 'missing', p.token))}, not application/json` });
        }
        let doc: unknown;
        try {
          doc = JSON.parse(body.toString('utf8'));
        } catch (err) {
          if (!(err instanceof SyntaxError)) throw err;
          return finish({ type: 'bad', status, detail: 'body is not valid JSON' });
        }
        const problem = notThePod(doc, p.namespace, p.name);
        if (problem !== undefined) return finish({ type: 'bad', status, detail: problem });
        finish({ type: 'ok', pod: doc as Record<string, unknown>, status });
      });
    });
    req.end();
  });
}

/** Why `doc` is not the pod asked for, or undefined when it is. */
function notThePod(doc: unknown, namespace: string, name: string): string | undefined {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return 'body is not a JSON object';
  const o = doc as Record<string, unknown>;
  if (o.kind !== 'Pod') return `body is of kind ${typeof o.kind === 'string' ? JSON.stringify(o.kind.slice(0, 40)) : 'none'}, not Pod`;
  if (o.apiVersion !== 'v1') return 'body is not apiVersion v1';
  const meta = o.metadata;
  if (typeof meta !== 'object' || meta === null) return 'pod has no metadata';
  const m = meta as Record<string, unknown>;
  if (m.name !== name || (m.namespace !== undefined && m.namespace !== namespace)) return 'pod in the body is not the one asked for';
  return undefined;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise<boolean>((resolveSleep) => {
    if (signal?.aborted) return resolveSleep(false);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolveSleep(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolveSleep(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function positive(value: number | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`getPod: ${what} must be a positive number`);
  return value;
}

/**
 * GET /api/v1/namespaces/{namespace}/pods/{name} and return the Pod object.
 * Throws KubeApiError (see the retry policy above); KubeconfigError when the
 * token file named by the kubeconfig cannot be read; RangeError for bad options.
 */
export async function getPod(access: KubeAccess, namespace: string, name: string, opts: GetPodOptions): Promise<Record<string, unknown>> {
  const started = Date.now();
  if (!isValidNamespace(namespace)) {
    throw new KubeApiError('invalid-name', `invalid namespace ${showName(namespace)}: not an RFC 1123 label of at most 63 characters; no API request made`, { attempts: 0 });
  }
  if (!isValidPodName(name)) {
    throw new KubeApiError('invalid-name', `invalid pod name ${showName(name)}: not an RFC 1123 subdomain of at most 253 characters; no API request made`, { attempts: 0 });
  }
  if (opts.deadlineMs === undefined) throw new RangeError('getPod: deadlineMs is required');
  const deadlineMs = positive(opts.deadlineMs, 0, 'deadlineMs');
  const interval = positive(opts.retryIntervalMs, DEFAULT_RETRY_INTERVAL_MS, 'retryIntervalMs');
  const maxAttempts = Math.floor(positive(opts.maxAttempts, DEFAULT_MAX_ATTEMPTS, 'maxAttempts'));
  const attemptTimeout = positive(opts.attemptTimeoutMs, DEFAULT_ATTEMPT_TIMEOUT_MS, 'attemptTimeoutMs');
  const maxBytes = positive(opts.maxResponseBytes, DEFAULT_MAX_RESPONSE_BYTES, 'maxResponseBytes');
  const deadline = started + deadlineMs;

  const base = access.server.pathname.replace(/\/+$/, '');
  const path = `${base}/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`;
  const host = access.server.host;
  const what = `pod ${namespace}/${name} from the Kubernetes API at ${host}`;

  let attempts = 0;
  let last: Exclude<Outcome, { type: 'ok' } | { type: 'aborted' }> | undefined;
  const report = (info: { attempt: number; status?: number; error?: string }): void => {
    try {
      opts.onAttempt?.(info);
    } catch {
      // a logging callback must not change the outcome
    }
  };
  const aborted = (): KubeApiError =>
    new KubeApiError('aborted', `getting ${what} was cancelled after ${attempts} attempt(s)`, { attempts, status: lastStatus(last) });

  for (;;) {
    if (opts.signal?.aborted) throw aborted();
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    const token = await currentToken(access);
    attempts++;
    const outcome = await attempt({
      access,
      path,
      token,
      timeoutMs: Math.max(1, Math.min(attemptTimeout, remaining)),
      maxBytes,
      namespace,
      name,
      signal: opts.signal,
    });
    if (outcome.type === 'aborted') throw aborted();
    if (outcome.type === 'ok') {
      report({ attempt: attempts, status: outcome.status });
      return outcome.pod;
    }
    last = outcome;
    report({ attempt: attempts, ...(lastStatus(outcome) !== undefined ? { status: lastStatus(outcome) } : {}), error: describe(outcome) });

    // Failures that retrying cannot fix.
    if (outcome.type === 'http' && outcome.status === 401) {
      const source = access.tokenFile !== undefined ? `token file ${access.tokenFile}` : access.kubeconfigPath !== undefined ? `kubeconfig ${access.kubeconfigPath}` : 'kubeconfig';
      throw new KubeApiError(
        'unauthorized',
        `the service account token was refused (HTTP 401) by the Kubernetes API at ${host} getting pod ${namespace}/${name}${outcome.detail}; the token in the ${source} may have expired or been revoked: meshlane install rewrites it; is the installer running on this node?`,
        { status: 401, attempts },
      );
    }
    if (outcome.type === 'http' && outcome.status === 403) {
      throw new KubeApiError(
        'forbidden',
        `the Kubernetes API at ${host} refused to let meshlane's service account get pod ${namespace}/${name} (HTTP 403)${outcome.detail}; check that its ClusterRole allows "get" on "pods"`,
        { status: 403, attempts },
      );
    }
    if (outcome.type === 'network' && outcome.tls) {
      throw new KubeApiError(
        'tls',
        `TLS verification of the Kubernetes API at ${host} failed: ${outcome.detail}; the CA in ${access.kubeconfigPath ?? 'the kubeconfig'} does not match the server's certificate (meshlane install writes it from the service account's ca.crt)`,
        { attempts, code: outcome.code },
      );
    }
    if (outcome.type === 'bad') {
      throw new KubeApiError('bad-response', `unexpected answer getting ${what} (HTTP ${outcome.status}): ${outcome.detail}`, { status: outcome.status, attempts });
    }
    if (outcome.type === 'http' && !retryableStatus(outcome.status)) {
      throw new KubeApiError('bad-response', `unexpected answer getting ${what}: HTTP ${outcome.status}${outcome.detail}`, { status: outcome.status, attempts });
    }

    if (attempts >= maxAttempts) break;
    const jittered = interval * (0.8 + 0.4 * Math.random());
    const wait = Math.max(jittered, outcome.type === 'http' ? (outcome.retryAfterMs ?? 0) : 0);
    // An attempt with only a sliver of the deadline left would be cut before the server
    // answers (on a busy node, before it even reads the request): the last real answer
    // is the one to report, not that cut.
    if (deadline - (Date.now() + wait) < Math.min(attemptTimeout, MIN_ATTEMPT_MS)) break;
    if (!(await sleep(wait, opts.signal))) throw aborted();
  }

  const elapsed = Date.now() - started;
  const summary = `could not get ${what}: ${attempts} attempt(s) in ${elapsed} ms (deadline ${deadlineMs} ms${attempts >= maxAttempts ? `, attempt limit ${maxAttempts}` : ''})`;
  if (last === undefined) {
    throw new KubeApiError('timeout', `${summary}: no attempt could be made`, { attempts });
  }
  const kind: KubeApiErrorKind =
    last.type === 'timeout' ? 'timeout' : last.type === 'http' && last.status === 404 ? 'not-found' : 'unavailable';
  throw new KubeApiError(kind, `${summary}; last: ${describe(last)}`, {
    attempts,
    status: lastStatus(last),
    code: last.type === 'network' ? last.code : undefined,
  });
}

function retryableStatus(status: number): boolean {
  return status === 404 || status === 429 || (status >= 500 && status <= 599);
}

function lastStatus(o: Outcome | undefined): number | undefined {
  return o !== undefined && (o.type === 'http' || o.type === 'bad' || o.type === 'ok') ? o.status : undefined;
}

function describe(o: Exclude<Outcome, { type: 'ok' } | { type: 'aborted' }>): string {
  switch (o.type) {
    case 'http':
      return `HTTP ${o.status}${o.detail}`;
    case 'bad':
      return `HTTP ${o.status}: ${o.detail}`;
    case 'network':
      return o.detail;
    case 'timeout':
      return o.detail;
  }
}
