// Secrets never reach a log: bearer tokens, kubeconfig credentials, keys.
// Applied to every log line's fields, recursively, by key name and by value shape.

const SECRET_KEY = /(^|_|-)(token|password|passwd|secret|authorization|bearer|client-key-data|client-certificate-data|key-data|kubeconfig-data)$/i;
const BEARER_VALUE = /\bBearer\s+[A-Za-z0-9._~+/=-]+/g;
const JWT_VALUE = /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+/g;
const MAX_DEPTH = 8;

export const REDACTED = '[redacted]';

export function redactString(value: string): string {
  return value.replace(BEARER_VALUE, `Bearer ${REDACTED}`).replace(JWT_VALUE, REDACTED);
}

/** A copy of `value` with secret-looking fields replaced; the caller's objects are never changed. */
export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactString(value);
  if (depth >= MAX_DEPTH || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value instanceof Error) return redactString(value.message);
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    out[key] = SECRET_KEY.test(key) ? REDACTED : redact(v, depth + 1);
  }
  return out;
}
