// A unary gRPC client for the node's container runtime (containerd, CRI-O) on
// its unix socket: HTTP/2 from node:http2, the 5-byte gRPC message prefix, the
// grpc-status trailer. Two calls, so no code generator and no gRPC library in
// the executable; the messages are in messages.ts.
import { connect as http2Connect, constants as h2, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect } from 'node:net';
import {
  decodeListPodSandboxResponse,
  decodePodSandboxStatusResponse,
  encodeListPodSandboxRequest,
  encodePodSandboxStatusRequest,
  MAX_CRI_MESSAGE_BYTES,
  RUNTIME_SERVICE,
  type SandboxStatus,
  type SandboxSummary,
} from './messages.js';
import { WireError } from './wire.js';
import { errorMessage } from '../describe-error.js';

/** The sockets kubelet's runtimes listen on, in the order a node is likely to have them. */
export const DEFAULT_CRI_SOCKETS = ['/run/containerd/containerd.sock', '/var/run/crio/crio.sock', '/run/k3s/containerd/containerd.sock'] as const;

export type CriErrorKind = 'unavailable' | 'timeout' | 'status' | 'bad-response';

export class CriError extends Error {
  override name = 'CriError';
  readonly kind: CriErrorKind;
  readonly method: string;
  /** The grpc-status of a 'status' error (12 UNIMPLEMENTED, 14 UNAVAILABLE, ...). */
  readonly grpcStatus: number | undefined;
  constructor(kind: CriErrorKind, method: string, message: string, grpcStatus?: number) {
    super(message);
    this.kind = kind;
    this.method = method;
    this.grpcStatus = grpcStatus;
  }
}

export interface CriClient {
  readonly socket: string;
  listPodSandboxes(): Promise<SandboxSummary[]>;
  podSandboxStatus(id: string): Promise<SandboxStatus>;
  close(): void;
}

function frame(body: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out.writeUInt8(0, 0); // not compressed
  out.writeUInt32BE(body.length, 1);
  out.set(body, 5);
  return out;
}

/** The one message of a unary answer, from the DATA bytes. */
export function unframe(data: Buffer, method: string): Uint8Array {
  if (data.length < 5) throw new CriError('bad-response', method, `${method}: the answer has ${data.length} bytes, not a gRPC message`);
  if (data.readUInt8(0) !== 0) throw new CriError('bad-response', method, `${method}: the answer is compressed, which meshlane did not ask for`);
  const len = data.readUInt32BE(1);
  if (len !== data.length - 5) throw new CriError('bad-response', method, `${method}: the message says ${len} bytes, ${data.length - 5} came`);
  return data.subarray(5);
}

export function criClient(socket: string, timeoutMs = 10_000): CriClient {
  let session: ClientHttp2Session | undefined;
  const open = (): ClientHttp2Session => {
    if (session && !session.closed && !session.destroyed) return session;
    const s = http2Connect('http://localhost', { createConnection: () => netConnect(socket) });
    s.on('error', () => undefined); // each call reports its own failure
    s.unref();
    session = s;
    return s;
  };

  function call(method: string, body: Uint8Array): Promise<Uint8Array> {
    const path = `/${RUNTIME_SERVICE}/${method}`;
    return new Promise((resolve, reject) => {
      let s: ClientHttp2Session;
      try {
        s = open();
      } catch (err) {
        reject(new CriError('unavailable', method, `${method} on ${socket}: ${errorMessage(err)}`));
        return;
      }
      const req = s.request({
        [h2.HTTP2_HEADER_METHOD]: 'POST',
        [h2.HTTP2_HEADER_PATH]: path,
        [h2.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
        te: 'trailers',
        'grpc-timeout': `${timeoutMs}m`,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      let status: number | undefined;
      let message = '';
      let settled = false;
      const done = (err: CriError | undefined, value?: Uint8Array): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          req.close(h2.NGHTTP2_CANCEL);
          reject(err);
        } else resolve(value as Uint8Array);
      };
      const timer = setTimeout(() => done(new CriError('timeout', method, `${method} on ${socket}: no answer in ${timeoutMs} ms`)), timeoutMs);
      const readStatus = (headers: Record<string, unknown>): void => {
        const st = headers['grpc-status'];
        if (st !== undefined) status = Number(st);
        const m = headers['grpc-message'];
        if (typeof m === 'string') message = decodeURIComponent(m).slice(0, 500);
      };
      req.on('response', (headers) => {
        const httpStatus = headers[h2.HTTP2_HEADER_STATUS];
        if (Number(httpStatus) !== 200) done(new CriError('bad-response', method, `${method} on ${socket}: HTTP status ${String(httpStatus)}`));
        readStatus(headers as Record<string, unknown>); // a trailers-only answer
      });
      req.on('trailers', (headers) => readStatus(headers as Record<string, unknown>));
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_CRI_MESSAGE_BYTES + 5) done(new CriError('bad-response', method, `${method} on ${socket}: the answer is over ${MAX_CRI_MESSAGE_BYTES} bytes`));
        else chunks.push(chunk);
      });
      req.on('error', (err) => done(new CriError('unavailable', method, `${method} on ${socket}: ${err.message}`)));
      req.on('end', () => {
        if (status === undefined) return done(new CriError('bad-response', method, `${method} on ${socket}: the answer has no grpc-status`));
        if (status !== 0) return done(new CriError('status', method, `${method} on ${socket}: grpc-status ${status}${message ? `: ${message}` : ''}`, status));
        try {
          done(undefined, unframe(Buffer.concat(chunks), method));
        } catch (err) {
          done(err instanceof CriError ? err : new CriError('bad-response', method, String(err)));
        }
      });
      req.end(frame(body));
    });
  }

  async function decoded<T>(method: string, body: Uint8Array, decode: (b: Uint8Array) => T): Promise<T> {
    const answer = await call(method, body);
    try {
      return decode(answer);
    } catch (err) {
      if (err instanceof WireError) throw new CriError('bad-response', method, `${method} on ${socket}: ${err.message}`);
      throw err;
    }
  }

  return {
    socket,
    listPodSandboxes: () => decoded('ListPodSandbox', encodeListPodSandboxRequest(), decodeListPodSandboxResponse),
    podSandboxStatus: (id: string) => decoded('PodSandboxStatus', encodePodSandboxStatusRequest(id, true), decodePodSandboxStatusResponse),
    close() {
      session?.close();
      session = undefined;
    },
  };
}
