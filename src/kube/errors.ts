// Errors of the Kubernetes API fallback. Their messages name files, the API
// server's host, HTTP statuses and field names, never a token, a key or any
// other content of a kubeconfig (they reach CNI error output and log lines).

export type KubeconfigErrorKind =
  /** The kubeconfig file does not exist (the installer has not written it yet). */
  | 'missing'
  /** A file (kubeconfig, CA, client cert/key, token file) exists but cannot be read, or is empty. */
  | 'unreadable'
  /** The file is not a kubeconfig: bad YAML/JSON, a field missing or of the wrong type. */
  | 'invalid'
  /** The kubeconfig asks for something the plugin cannot do (exec/auth-provider credentials, http://). */
  | 'unsupported';

export const INSTALLER_HINT = 'meshlane install writes this file; is the installer running on this node?';

export class KubeconfigError extends Error {
  override readonly name = 'KubeconfigError';
  readonly kind: KubeconfigErrorKind;
  /** The file the problem is in (the kubeconfig, or the CA/token file it names). */
  readonly path: string;
  /** The kubeconfig field at fault, e.g. `clusters[local].cluster.server`. */
  readonly field: string | undefined;

  constructor(kind: KubeconfigErrorKind, path: string, message: string, field?: string) {
    super(message);
    this.kind = kind;
    this.path = path;
    this.field = field;
  }
}

export type KubeApiErrorKind =
  /** The pod is not there (HTTP 404 on every attempt up to the deadline). */
  | 'not-found'
  /** HTTP 401: the token was refused. Never retried. */
  | 'unauthorized'
  /** HTTP 403: the service account may not get pods. Never retried. */
  | 'forbidden'
  /** The deadline passed while attempts were timing out. */
  | 'timeout'
  /** The API server kept failing (connection refused/reset, 429, 5xx) until the deadline or the attempt limit. */
  | 'unavailable'
  /** The server answered something that is not a Pod (content type, JSON, kind, size, other 4xx). Never retried. */
  | 'bad-response'
  /** The namespace or pod name is not a valid Kubernetes name; no request was made. */
  | 'invalid-name'
  /** The server's TLS certificate was not accepted (wrong CA, wrong host name, expired). Never retried. */
  | 'tls'
  /** The caller's AbortSignal fired. */
  | 'aborted';

export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  readonly kind: KubeApiErrorKind;
  /** The HTTP status of the last attempt, when there was an answer. */
  readonly status: number | undefined;
  /** Requests made (0 when refused before any request). */
  readonly attempts: number;
  /** A Node error code of the last attempt (ECONNRESET, DEPTH_ZERO_SELF_SIGNED_CERT ...), when there was one. */
  readonly code: string | undefined;

  constructor(kind: KubeApiErrorKind, message: string, info: { status?: number | undefined; attempts: number; code?: string | undefined }) {
    super(message);
    this.kind = kind;
    this.status = info.status;
    this.attempts = info.attempts;
    this.code = info.code;
  }
}
