// A local stand-in for the Kubernetes API server: HTTPS on 127.0.0.1 (random
// port) with a CA and server certificate made by openssl at test time, serving
// the real pod objects of testing/fixtures/pods at the API's paths, checking
// the bearer token, and answering each request as the test scripts it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { upstreamFixtures } from '../helpers/paths.js';

export const podFixtureDir = join(upstreamFixtures, 'pods');

export interface Pki {
  dir: string;
  caPem: Buffer;
  caFile: string;
  /** A CA that did not sign the server's certificate. */
  otherCaPem: Buffer;
  serverKey: Buffer;
  serverCert: Buffer;
  /** A client certificate signed by the CA (for the client-cert kubeconfig). */
  clientKey: Buffer;
  clientCert: Buffer;
  cleanup(): void;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A CA, a server certificate for 127.0.0.1/localhost, a client certificate and a second CA, in a temp dir. */
export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'meshlane-kube-pki-'));
  try {
    for (const [name, cn] of [['ca', 'meshlane-test-ca'], ['other-ca', 'some-other-ca']] as const) {
      openssl(dir, ['req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${cn}`, '-days', '2',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    }
    writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
    writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
    for (const [name, cn] of [['server', '127.0.0.1'], ['client', 'system:serviceaccount:kube-system:meshlane']] as const) {
      openssl(dir, ['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
      openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
        '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const read = (f: string): Buffer => readFileSync(join(dir, f));
  return {
    dir,
    caPem: read('ca.crt'),
    caFile: join(dir, 'ca.crt'),
    otherCaPem: read('other-ca.crt'),
    serverKey: read('server.key'),
    serverCert: read('server.crt'),
    clientKey: read('client.key'),
    clientCert: read('client.crt'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** How the server answers one request. 'api' is the real API's behaviour: token check, then the pod or 404. */
export type Behaviour =
  | 'api'
  | '401'
  | '403'
  | '404'
  | '429'
  | '500'
  | '503'
  | 'slow'
  | 'reset'
  | 'reset-mid-body'
  | 'wrong-type'
  | 'invalid-json'
  | 'wrong-kind'
  | 'other-pod'
  | 'huge'
  | 'huge-declared'
  | 'echo-token-500'
  | '400';

export interface SeenRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  accept: string | undefined;
}

export interface FakePod {
  namespace: string;
  name: string;
  file: string;
  body: Buffer;
}

/** The fixture pods, as the files hold them. */
export function loadFixturePods(): FakePod[] {
  return readdirSync(podFixtureDir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const body = readFileSync(join(podFixtureDir, f));
      const pod = JSON.parse(body.toString('utf8')) as { metadata: { namespace: string; name: string } };
      return { namespace: pod.metadata.namespace, name: pod.metadata.name, file: f, body };
    });
}

function status(code: number, reason: string, message: string): Buffer {
  return Buffer.from(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }));
}

/** A TCP RST: on the TCP socket under the TLS one (a TLSSocket itself cannot reset). */
function resetConnection(req: IncomingMessage): void {
  const tcp = (req.socket as unknown as { _parent?: Socket })._parent;
  try {
    (tcp ?? req.socket).resetAndDestroy();
  } catch {
    req.socket.destroy();
  }
}

const POD_PATH = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/;

export class FakeApi {
  readonly requests: SeenRequest[] = [];
  /** Answers for the next requests, in order; when empty, `fallback`. */
  readonly script: Behaviour[] = [];
  fallback: Behaviour = 'api';
  /** The token the server accepts. */
  token: string;
  /** How long 'slow' holds the answer. */
  slowMs = 3000;
  private readonly pods = new Map<string, FakePod>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private server: Server | undefined;
  port = 0;

  constructor(pki: Pki, token: string) {
    this.token = token;
    for (const p of loadFixturePods()) this.pods.set(`${p.namespace}/${p.name}`, p);
    this.server = createServer({ key: pki.serverKey, cert: pki.serverCert, ca: pki.caPem, requestCert: true, rejectUnauthorized: false }, (req, res) =>
      this.handle(req, res),
    );
    this.server.on('tlsClientError', () => {
      // a client that refused our certificate (the wrong-CA test)
    });
  }

  async listen(): Promise<this> {
    const server = this.server!;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  enqueue(...b: Behaviour[]): void {
    this.script.push(...b);
  }

  reset(): void {
    this.script.length = 0;
    this.requests.length = 0;
    this.fallback = 'api';
  }

  /** The client certificate's subject CN of the last request, when one was sent. */
  lastClientCn: string | undefined;

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests.push({ method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization, accept: req.headers.accept });
    const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate?.();
    this.lastClientCn = peer && typeof peer.subject?.CN === 'string' ? peer.subject.CN : undefined;
    res.on('error', () => {});
    const behaviour = this.script.shift() ?? this.fallback;
    const json = (code: number, body: Buffer, extra: Record<string, string> = {}): void => {
      res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': String(body.length), ...extra });
      res.end(body);
    };
    const m = POD_PATH.exec((req.url ?? '').split('?')[0]!);
    const pod = m ? this.pods.get(`${decodeURIComponent(m[1]!)}/${decodeURIComponent(m[2]!)}`) : undefined;
    switch (behaviour) {
      case 'api': {
        if (req.headers.authorization !== `Bearer ${this.token}`) return json(401, status(401, 'Unauthorized', 'Unauthorized'));
        if (req.method !== 'GET') return json(405, status(405, 'MethodNotAllowed', 'the server does not allow this method'));
        if (!m) return json(404, status(404, 'NotFound', 'the server could not find the requested resource'));
        if (!pod) return json(404, status(404, 'NotFound', `pods "${decodeURIComponent(m[2]!)}" not found`));
        return json(200, pod.body);
      }
      case '401':
        return json(401, status(401, 'Unauthorized', 'Unauthorized'));
      case '403':
        return json(403, status(403, 'Forbidden', 'pods "x" is forbidden: User "system:serviceaccount:kube-system:meshlane" cannot get resource "pods"'));
      case '404':
        return json(404, status(404, 'NotFound', 'pods "x" not found'));
      case '429':
        return json(429, status(429, 'TooManyRequests', 'too many requests'), { 'Retry-After': '0' });
      case '500':
        return json(500, status(500, 'InternalError', 'Internal error occurred: etcdserver: request timed out'));
      case '503':
        res.writeHead(503, { 'Content-Type': 'text/plain' });
        return void res.end('Service Unavailable');
      case '400':
        return json(400, status(400, 'BadRequest', 'bad request'));
      case 'echo-token-500':
        return json(500, status(500, 'InternalError', `broken proxy saw Authorization: ${req.headers.authorization ?? ''} and token ${this.token}`));
      case 'slow': {
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          if (pod) json(200, pod.body);
          else json(404, status(404, 'NotFound', 'not found'));
        }, this.slowMs);
        this.timers.add(timer);
        res.on('close', () => {
          clearTimeout(timer);
          this.timers.delete(timer);
        });
        return;
      }
      case 'reset':
        return resetConnection(req);
      case 'reset-mid-body': {
        const body = pod?.body ?? Buffer.from('{}');
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': String(body.length) });
        res.write(body.subarray(0, Math.floor(body.length / 2)));
        const timer = setTimeout(() => resetConnection(req), 20);
        this.timers.add(timer);
        return;
      }
      case 'wrong-type':
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        return void res.end('<html><body>Login required</body></html>');
      case 'invalid-json':
        res.writeHead(200, { 'Content-Type': 'application/json' });
        return void res.end('{"kind":"Pod","apiVersion":"v1","metadata":');
      case 'wrong-kind':
        return json(200, Buffer.from(JSON.stringify({ kind: 'Secret', apiVersion: 'v1', metadata: { name: 'x', namespace: 'default' } })));
      case 'other-pod': {
        const other = [...this.pods.values()].find((p) => p !== pod)!;
        return json(200, other.body);
      }
      case 'huge': {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.write('{"kind":"Pod","apiVersion":"v1","metadata":{"name":"x"},"pad":"');
        const chunk = Buffer.alloc(64 * 1024, 'a');
        for (let i = 0; i < 80; i++) res.write(chunk);
        return void res.end('"}');
      }
      case 'huge-declared':
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': String(5 * 1024 * 1024) });
        return void res.write('{"kind":"Pod"');
    }
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
