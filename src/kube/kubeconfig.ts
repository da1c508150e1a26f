// The kubeconfig the installer writes for the plugin (DESIGN.md "Interfaces":
// `kubeconfig` in the conflist entry), reduced to what one GET needs: the server,
// how to trust it, and the credential.
//
// Start-up cost: JSON is parsed with JSON.parse; only a YAML file (as Istio's
// installer writes) loads the `yaml` package, lazily (about 20-30 ms cold).
//
// Nothing from the file's content ever reaches an error message: messages name
// the file and the field, and say what to do.
import { readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { INSTALLER_HINT, KubeconfigError } from './errors.js';
import { isJsonObject as isObj } from '../json/value.js';
import { errnoOf } from '../describe-error.js';

export interface KubeAccess {
  /** The API server, always https:. Its path (a proxy prefix) is kept. */
  server: URL;
  /** A static bearer token (kubeconfig `token`). */
  token?: string;
  /** A file holding the bearer token (kubeconfig `tokenFile`), absolute; read on every request, since tokens rotate. Preferred over `token`. */
  tokenFile?: string;
  /** PEM CA bundle to verify the server with. */
  ca?: Buffer;
  insecureSkipTlsVerify: boolean;
  clientCert?: Buffer;
  clientKey?: Buffer;
  /** kubeconfig `tls-server-name`: the name to verify the server's certificate for (and send as SNI). */
  tlsServerName?: string;
  /** The kubeconfig this came from, for messages. */
  kubeconfigPath?: string;
}

/** No kubeconfig, CA, certificate or token file is anywhere near this big. */
const MAX_FILE_BYTES = 1024 * 1024;
const MAX_TOKEN_BYTES = 64 * 1024;
/** Printable ASCII without space: what a bearer token may hold (and nothing that could split a header). */
const TOKEN_CHARS = /^[\x21-\x7e]+$/;
const BASE64 = /^[A-Za-z0-9+/\r\n\t ]*={0,2}[\r\n\t ]*$/;
const PEM_CERT = '-----BEGIN CERTIFICATE-----';
const PEM_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

type Obj = Record<string, unknown>;

/** A name from the file, for a message: kubeconfig names are not secrets, but keep them short and printable. */
function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}...` : s);
}

/** Read a small file, or throw a KubeconfigError naming `what` and the path (never its content). */
async function readSmallFile(path: string, what: string, field: string | undefined, limit: number): Promise<Buffer> {
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new KubeconfigError('unreadable', path, `${what} ${path} is not a regular file`, field);
    if (st.size > limit) throw new KubeconfigError('unreadable', path, `${what} ${path} is too large (${st.size} bytes, at most ${limit})`, field);
    const data = await readFile(path);
    if (data.length > limit) throw new KubeconfigError('unreadable', path, `${what} ${path} is too large (at most ${limit} bytes)`, field);
    return data;
  } catch (err) {
    if (err instanceof KubeconfigError) throw err;
    const code = errnoOf(err) ?? 'unknown error';
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new KubeconfigError('missing', path, `${what} ${path} does not exist (${code})`, field);
    }
    throw new KubeconfigError('unreadable', path, `${what} ${path} cannot be read (${code})`, field);
  }
}

async function parseDocument(text: string, path: string): Promise<unknown> {
  if (text.trim() === '') throw new KubeconfigError('invalid', path, `kubeconfig ${path} is empty; ${INSTALLER_HINT}`);
  if (text.trimStart().startsWith('{')) {
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      // JSON-looking but not JSON: YAML (a superset) decides, and tells where.
    }
  }
  const { parse } = await import('yaml');
  try {
    return parse(text, { logLevel: 'error', uniqueKeys: true, maxAliasCount: 100 }) as unknown;
  } catch (err) {
    // The yaml library's message quotes the offending source line: keep only code and position.
    const e = err as { code?: unknown; linePos?: Array<{ line: number; col: number }> };
    const pos = e.linePos?.[0];
    const where = pos ? ` at line ${pos.line}, column ${pos.col}` : '';
    const code = typeof e.code === 'string' ? ` (${e.code})` : '';
    throw new KubeconfigError('invalid', path, `kubeconfig ${path} is not valid YAML${where}${code}; ${INSTALLER_HINT}`);
  }
}

class Fields {
  constructor(readonly path: string) {}

  invalid(field: string, problem: string): KubeconfigError {
    return new KubeconfigError('invalid', this.path, `kubeconfig ${this.path}: ${field} ${problem}; ${INSTALLER_HINT}`, field);
  }

  optString(obj: Obj, key: string, field: string): string | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw this.invalid(field, `must be a string, not ${Array.isArray(v) ? 'an array' : typeof v}`);
    return v === '' ? undefined : v;
  }

  optBool(obj: Obj, key: string, field: string): boolean | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') throw this.invalid(field, `must be true or false, not ${Array.isArray(v) ? 'an array' : typeof v}`);
    return v;
  }

  /** A named list (`clusters`, `contexts`, `users`): entries `{name, <item>: {...}}`. */
  list(doc: Obj, key: string, item: string): Array<{ name: string; body: Obj }> {
    const v = doc[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw this.invalid(key, 'must be a list');
    return v.map((entry: unknown, i) => {
      if (!isObj(entry)) throw this.invalid(`${key}[${i}]`, 'must be a mapping');
      const name = entry.name;
      if (typeof name !== 'string' || name === '') throw this.invalid(`${key}[${i}].name`, 'is missing');
      const body = entry[item];
      if (body === undefined || body === null) return { name, body: {} };
      if (!isObj(body)) throw this.invalid(`${key}[${quote(name)}].${item}`, 'must be a mapping');
      return { name, body };
    });
  }

  base64(obj: Obj, key: string, field: string): Buffer | undefined {
    const s = this.optString(obj, key, field);
    if (s === undefined) return undefined;
    const data = BASE64.test(s) ? Buffer.from(s, 'base64') : undefined;
    if (!data || data.length === 0) throw this.invalid(field, 'is not valid base64');
    return data;
  }
}

function relativeTo(kubeconfigPath: string, p: string): string {
  return isAbsolute(p) ? p : resolve(dirname(kubeconfigPath), p);
}

function checkToken(token: string, source: string, field: string | undefined, path: string): string {
  const t = token.trim();
  if (t === '') throw new KubeconfigError('invalid', path, `${source} is empty; ${INSTALLER_HINT}`, field);
  if (!TOKEN_CHARS.test(t)) {
    throw new KubeconfigError('invalid', path, `${source} holds characters that a bearer token cannot have; ${INSTALLER_HINT}`, field);
  }
  return t;
}

/**
 * Load the kubeconfig at `path`: its current-context (or its only context, or its
 * only cluster and user when it has no contexts). Throws KubeconfigError:
 * kind `missing` when the file (or a CA/cert file it names) does not exist,
 * `unreadable`, `invalid` (names the field), `unsupported` (exec/auth-provider
 * credentials, basic auth, a non-https server).
 */
export async function loadKubeconfig(path: string): Promise<KubeAccess> {
  const f = new Fields(path);
  let raw: Buffer;
  try {
    raw = await readSmallFile(path, 'kubeconfig', undefined, MAX_FILE_BYTES);
  } catch (err) {
    if (err instanceof KubeconfigError && (err.kind === 'missing' || err.kind === 'unreadable')) {
      throw new KubeconfigError(err.kind, path, `${err.message}; ${INSTALLER_HINT}`);
    }
    throw err;
  }
  const doc = await parseDocument(raw.toString('utf8'), path);
  if (!isObj(doc)) throw new KubeconfigError('invalid', path, `kubeconfig ${path} is not a mapping; ${INSTALLER_HINT}`);
  const kind = f.optString(doc, 'kind', 'kind');
  if (kind !== undefined && kind !== 'Config') throw f.invalid('kind', `is ${quote(kind)}, not "Config"`);

  const clusters = f.list(doc, 'clusters', 'cluster');
  const contexts = f.list(doc, 'contexts', 'context');
  const users = f.list(doc, 'users', 'user');

  // Which cluster and user.
  let clusterName: string;
  let userName: string | undefined;
  const current = f.optString(doc, 'current-context', 'current-context');
  let context: { name: string; body: Obj } | undefined;
  if (current !== undefined) {
    context = contexts.find((c) => c.name === current);
    if (!context) throw f.invalid('current-context', `names ${quote(current)}, which is not in contexts`);
  } else if (contexts.length === 1) {
    context = contexts[0];
  } else if (contexts.length > 1) {
    throw f.invalid('current-context', `is not set and there are ${contexts.length} contexts to choose from`);
  }
  if (context) {
    const cf = `contexts[${quote(context.name)}].context`;
    const c = f.optString(context.body, 'cluster', `${cf}.cluster`);
    if (c === undefined) throw f.invalid(`${cf}.cluster`, 'is missing');
    clusterName = c;
    userName = f.optString(context.body, 'user', `${cf}.user`);
  } else {
    if (clusters.length !== 1) throw f.invalid('contexts', clusters.length === 0 ? 'and clusters are empty' : 'are empty and there is more than one cluster');
    if (users.length > 1) throw f.invalid('contexts', 'are empty and there is more than one user');
    clusterName = clusters[0]!.name;
    userName = users[0]?.name;
  }
  const cluster = clusters.find((c) => c.name === clusterName);
  if (!cluster) throw f.invalid('clusters', `have no cluster named ${quote(clusterName)}`);
  let user: { name: string; body: Obj } | undefined;
  if (userName !== undefined) {
    user = users.find((u) => u.name === userName);
    if (!user) throw f.invalid('users', `have no user named ${quote(userName)}`);
  }

  // The cluster.
  const cf = `clusters[${quote(cluster.name)}].cluster`;
  const serverText = f.optString(cluster.body, 'server', `${cf}.server`);
  if (serverText === undefined) throw f.invalid(`${cf}.server`, 'is missing');
  let server: URL;
  try {
    server = new URL(serverText);
  } catch (err) {
    if (!(err instanceof TypeError)) throw err; // what new URL() throws for a bad URL
    throw f.invalid(`${cf}.server`, 'is not a URL');
  }
  if (server.username !== '' || server.password !== '') throw f.invalid(`${cf}.server`, 'must not carry credentials');
  if (server.protocol !== 'https:') {
    throw new KubeconfigError('unsupported', path, `kubeconfig ${path}: ${cf}.server must be an https:// URL (host ${server.host}); ${INSTALLER_HINT}`, `${cf}.server`);
  }
  if (server.search !== '' || server.hash !== '') throw f.invalid(`${cf}.server`, 'must not have a query or fragment');

  const access: KubeAccess = { server, insecureSkipTlsVerify: false, kubeconfigPath: path };
  access.insecureSkipTlsVerify = f.optBool(cluster.body, 'insecure-skip-tls-verify', `${cf}.insecure-skip-tls-verify`) ?? false;
  const tlsServerName = f.optString(cluster.body, 'tls-server-name', `${cf}.tls-server-name`);
  if (tlsServerName !== undefined) access.tlsServerName = tlsServerName;

  let ca = f.base64(cluster.body, 'certificate-authority-data', `${cf}.certificate-authority-data`);
  let caField = `${cf}.certificate-authority-data`;
  const caFile = f.optString(cluster.body, 'certificate-authority', `${cf}.certificate-authority`);
  if (ca === undefined && caFile !== undefined) {
    caField = `${cf}.certificate-authority`;
    ca = await readSmallFile(relativeTo(path, caFile), `CA file (${caField} of ${path})`, caField, MAX_FILE_BYTES);
  }
  if (ca !== undefined) {
    if (!ca.includes(PEM_CERT)) throw f.invalid(caField, 'is not a PEM certificate');
    if (access.insecureSkipTlsVerify) {
      throw f.invalid(`${cf}.insecure-skip-tls-verify`, 'is true together with a certificate authority (not allowed, as in kubectl)');
    }
    access.ca = ca;
  }

  // The user.
  if (user) {
    const uf = `users[${quote(user.name)}].user`;
    for (const k of ['exec', 'auth-provider', 'username', 'password']) {
      if (user.body[k] !== undefined && user.body[k] !== null) {
        throw new KubeconfigError('unsupported', path, `kubeconfig ${path}: ${uf}.${k} is not supported by the CNI plugin (use a token, tokenFile or client certificate); ${INSTALLER_HINT}`, `${uf}.${k}`);
      }
    }
    const token = f.optString(user.body, 'token', `${uf}.token`);
    if (token !== undefined) access.token = checkToken(token, `kubeconfig ${path}: ${uf}.token`, `${uf}.token`, path);
    const tokenFile = f.optString(user.body, 'tokenFile', `${uf}.tokenFile`);
    if (tokenFile !== undefined) access.tokenFile = relativeTo(path, tokenFile);

    let cert = f.base64(user.body, 'client-certificate-data', `${uf}.client-certificate-data`);
    const certFile = f.optString(user.body, 'client-certificate', `${uf}.client-certificate`);
    if (cert === undefined && certFile !== undefined) {
      cert = await readSmallFile(relativeTo(path, certFile), `client certificate (${uf}.client-certificate of ${path})`, `${uf}.client-certificate`, MAX_FILE_BYTES);
    }
    let key = f.base64(user.body, 'client-key-data', `${uf}.client-key-data`);
    const keyFile = f.optString(user.body, 'client-key', `${uf}.client-key`);
    if (key === undefined && keyFile !== undefined) {
      key = await readSmallFile(relativeTo(path, keyFile), `client key (${uf}.client-key of ${path})`, `${uf}.client-key`, MAX_FILE_BYTES);
    }
    if ((cert === undefined) !== (key === undefined)) {
      throw f.invalid(cert === undefined ? `${uf}.client-certificate-data` : `${uf}.client-key-data`, 'is missing (a client certificate needs its key)');
    }
    if (cert !== undefined && key !== undefined) {
      if (!cert.includes(PEM_CERT)) throw f.invalid(`${uf}.client-certificate-data`, 'is not a PEM certificate');
      if (!PEM_KEY.test(key.toString('latin1'))) throw f.invalid(`${uf}.client-key-data`, 'is not a PEM private key');
      access.clientCert = cert;
      access.clientKey = key;
    }
  }
  return access;
}

/**
 * The bearer token to send now: the token file's current content when the
 * kubeconfig names one (read on every call: the kubelet and the installer rotate
 * it), else the static token, else none. Throws KubeconfigError when the token
 * file is missing, unreadable or empty.
 */
export async function currentToken(access: KubeAccess): Promise<string | undefined> {
  if (access.tokenFile !== undefined) {
    const where = access.kubeconfigPath !== undefined ? ` (tokenFile of ${access.kubeconfigPath})` : '';
    let data: Buffer;
    try {
      data = await readSmallFile(access.tokenFile, `token file${where}`, 'tokenFile', MAX_TOKEN_BYTES);
    } catch (err) {
      if (err instanceof KubeconfigError) throw new KubeconfigError(err.kind, err.path, `${err.message}; ${INSTALLER_HINT}`, err.field);
      throw err;
    }
    return checkToken(data.toString('utf8'), `token file ${access.tokenFile}${where}`, 'tokenFile', access.tokenFile);
  }
  return access.token;
}
