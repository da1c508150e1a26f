// rtnetlink in-process: messages packed and parsed here, sent through a netlink
// socket of the native module. Enough for tc (qdiscs and filters); the socket
// belongs to the netns it was opened in (src/sys/netns.ts opens it in a pod's).
import { native, type NativeModule } from './native.js';
import { SyscallError } from './syscall-error.js';

export const NETLINK_ROUTE = 0;

export const NLM_F = { REQUEST: 0x1, MULTI: 0x2, ACK: 0x4, ROOT: 0x100, MATCH: 0x200, REPLACE: 0x100, EXCL: 0x200, CREATE: 0x400 } as const;
const NLM_F_ACK_TLVS = 0x200;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLMSGERR_ATTR_MSG = 1;
const HDR = 16;

/** One attribute: a type and its bytes, or nested attributes. */
export interface Attr {
  type: number;
  data: Uint8Array | readonly Attr[];
}

export interface Message {
  type: number;
  flags: number;
  /** The bytes after the header: the family header, then attributes. */
  body: Uint8Array;
}

const align4 = (n: number): number => (n + 3) & ~3;

function attrsLength(attrs: readonly Attr[]): number {
  return attrs.reduce((sum, a) => sum + align4(4 + (a.data instanceof Uint8Array ? a.data.length : attrsLength(a.data))), 0);
}

function writeAttrs(out: Uint8Array, view: DataView, at: number, attrs: readonly Attr[]): number {
  for (const a of attrs) {
    const start = at;
    at += 4;
    if (a.data instanceof Uint8Array) {
      out.set(a.data, at);
      at += a.data.length;
    } else {
      at = writeAttrs(out, view, at, a.data);
    }
    view.setUint16(start, at - start, true);
    view.setUint16(start + 2, a.type, true);
    at = align4(at);
  }
  return at;
}

/** Attributes of a message body after its `skip`-byte family header, in order (nested ones as raw bytes; the NLA_F_NESTED and byte-order flags dropped from the type). */
export function parseAttrList(body: Uint8Array, skip = 0): Array<{ type: number; data: Uint8Array }> {
  const out: Array<{ type: number; data: Uint8Array }> = [];
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  for (let at = align4(skip); at + 4 <= body.length; ) {
    const len = view.getUint16(at, true);
    if (len < 4 || at + len > body.length) break;
    out.push({ type: view.getUint16(at + 2, true) & 0x3fff, data: body.subarray(at + 4, at + len) });
    at += align4(len);
  }
  return out;
}

/** Attributes of a message body after its `skip`-byte family header, by type (the last of a type wins). */
export function parseAttrs(body: Uint8Array, skip = 0): Map<number, Uint8Array> {
  return new Map(parseAttrList(body, skip).map((a) => [a.type, a.data]));
}

export const u32Attr = (type: number, v: number): Attr => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return { type, data: b };
};
export const strAttr = (type: number, s: string): Attr => ({ type, data: Buffer.from(`${s}\0`, 'utf8') });
export const readU32 = (b: Uint8Array | undefined): number | undefined => (b && b.length >= 4 ? new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true) : undefined);
export const readStr = (b: Uint8Array | undefined): string | undefined => {
  if (!b) return undefined;
  const end = b.indexOf(0);
  return Buffer.from(b.subarray(0, end < 0 ? b.length : end)).toString('utf8');
};

/** A netlink socket (opened by the caller, possibly in another netns) and its requests. */
export class NetlinkSocket {
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly buf = new Uint8Array(65536);
  private readonly n: NativeModule;

  constructor(
    readonly fd: number,
    /** What errors call the socket's target (an interface in a netns). */
    readonly target: string,
  ) {
    this.n = native();
  }

  static open(protocol: number, target: string): NetlinkSocket {
    const n = native();
    const fd = n.netlinkSocket(protocol);
    if (fd < 0) throw new SyscallError('socket(AF_NETLINK)', target, -fd);
    return new NetlinkSocket(fd, target);
  }

  private send(type: number, flags: number, header: Uint8Array, attrs: readonly Attr[], op: string): number {
    const len = HDR + align4(header.length) + attrsLength(attrs);
    const msg = new Uint8Array(len);
    const view = new DataView(msg.buffer);
    const seq = (this.seq = (this.seq + 1) & 0x7fffffff);
    view.setUint32(0, len, true);
    view.setUint16(4, type, true);
    view.setUint16(6, flags | NLM_F.REQUEST, true);
    view.setUint32(8, seq, true);
    msg.set(header, HDR);
    writeAttrs(msg, view, HDR + align4(header.length), attrs);
    const r = this.n.send(this.fd, msg);
    if (r < 0) throw new SyscallError(op, this.target, -r);
    return seq;
  }

  /** The messages answering `seq`, until its ACK/error or NLMSG_DONE. An error reply throws, and so does an answer of more than `max` messages. */
  private receive(seq: number, op: string, dump: boolean, max = Number.POSITIVE_INFINITY): Message[] {
    const out: Message[] = [];
    for (;;) {
      const r = this.n.recv(this.fd, this.buf);
      if (r < 0) throw new SyscallError(op, this.target, -r, 'no answer from the kernel');
      const view = new DataView(this.buf.buffer, 0, r);
      for (let at = 0; at + HDR <= r; ) {
        const len = view.getUint32(at, true);
        if (len < HDR || at + len > r) break;
        const type = view.getUint16(at + 4, true);
        const flags = view.getUint16(at + 6, true);
        const mseq = view.getUint32(at + 8, true);
        const body = this.buf.slice(at + HDR, at + len);
        at += align4(len);
        if (mseq !== seq) continue;
        if (type === NLMSG_DONE) return out;
        if (type === NLMSG_ERROR) {
          const err = new DataView(body.buffer).getInt32(0, true);
          if (err === 0) {
            if (!dump) return out;
            continue;
          }
          // With NETLINK_EXT_ACK the kernel may add its reason (after the echoed request header).
          let reason: string | undefined;
          if (flags & NLM_F_ACK_TLVS) {
            const echoed = new DataView(body.buffer).getUint32(4, true);
            reason = readStr(parseAttrs(body, 4 + Math.min(echoed, HDR)).get(NLMSGERR_ATTR_MSG));
          }
          throw new SyscallError(op, this.target, -err, reason ? `the kernel says: ${reason}` : undefined);
        }
        out.push({ type, flags, body });
        if (out.length > max) throw new Error(`${op} on ${this.target}: more than ${max} messages in the answer (the socket must be closed now)`);
      }
    }
  }

  /** A request the kernel acknowledges (NLM_F_ACK); throws its error. */
  request(type: number, flags: number, header: Uint8Array, attrs: readonly Attr[], op: string): void {
    this.receive(this.send(type, flags | NLM_F.ACK, header, attrs, op), op, false);
  }

  /** A dump request: every message of the answer (at most `max`: more throws). */
  dump(type: number, header: Uint8Array, attrs: readonly Attr[], op: string, max?: number): Message[] {
    return this.receive(this.send(type, NLM_F.ROOT | NLM_F.MATCH, header, attrs, op), op, true, max);
  }

  close(): void {
    this.n.close(this.fd);
  }
}
