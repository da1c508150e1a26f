// testing/tools/mlload against a small HTTP/1.1 server on loopback (this test
// process): the fixed rate is kept, and latency counts from each request's due
// time: one stalled response delays the requests queued behind it on its
// connection, and they show it, while their own send-to-reply time stays short.
import { createServer, type Server } from 'node:net';
import t from 'tap';
import { execa } from 'execa';
import { buildTool } from '../../testing/sandbox/node.js';
import { parseLoad } from '../../scripts/bench/util.js';

const mlload = await buildTool('mlload');
const BODY = 'x'.repeat(1024);
const RESPONSE = `HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\nContent-Type: text/plain\r\n\r\n${BODY}`;

/** Answers every request; the `stallAt`-th request (1-based, over all connections) waits `stallMs`. */
async function server(stallAt: number, stallMs: number): Promise<{ srv: Server; port: number; requests: () => number }> {
  let n = 0;
  const srv = createServer((sock) => {
    let buf = '';
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      let i: number;
      while ((i = buf.indexOf('\r\n\r\n')) >= 0) {
        buf = buf.slice(i + 4);
        n += 1;
        if (n === stallAt) setTimeout(() => sock.write(RESPONSE), stallMs);
        else sock.write(RESPONSE);
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', () => res()));
  const addr = srv.address();
  if (!addr || typeof addr === 'string') throw new Error('no port');
  return { srv, port: addr.port, requests: () => n };
}

t.test('a steady server: every request measured, at the rate asked', async (t) => {
  const s = await server(-1, 0);
  t.teardown(() => s.srv.close());
  const r = await execa(mlload, ['--connect', `127.0.0.1:${s.port}`, '--rate', '400', '--connections', '4', '--duration-ms', '1000', '--warmup-ms', '200'], { reject: false });
  t.equal(r.exitCode, 0, r.stdout + r.stderr);
  const l = parseLoad(r.stdout);
  t.equal(l.error, undefined);
  t.equal(l.sent, 480, '400/s over 1.2 s (warm-up included)');
  t.equal(l.completed, 480);
  t.equal(s.requests(), 480, 'the server saw each one');
  t.ok(l.p50Us > 0 && l.p50Us <= l.p90Us && l.p90Us <= l.p99Us && l.p99Us <= l.p999Us && l.p999Us <= l.maxUs, JSON.stringify(l));
});

t.test('a stall of 300 ms on one connection shows in the requests it delayed (no coordinated omission)', async (t) => {
  const s = await server(50, 300);
  t.teardown(() => s.srv.close());
  // 1 connection at 200/s: request 50 stalls 300 ms, so about 60 requests due meanwhile wait for it.
  const r = await execa(mlload, ['--connect', `127.0.0.1:${s.port}`, '--rate', '200', '--connections', '1', '--duration-ms', '2000'], { reject: false });
  t.equal(r.exitCode, 0, r.stdout + r.stderr);
  const j = JSON.parse(r.stdout.trim()) as Record<string, number>;
  t.equal(j['completed'], 400);
  t.ok((j['late_sends'] ?? 0) >= 40, `requests sent late behind the stall: ${j['late_sends']}`);
  t.ok((j['p90_us'] ?? 0) >= 50_000, `p90 counts from the due time: ${j['p90_us']} µs`);
  t.ok((j['max_us'] ?? 0) >= 290_000, `the stalled request itself: ${j['max_us']} µs`);
  t.ok((j['svc_p50_us'] ?? Infinity) < 50_000, `each request's own send-to-reply time stays short: ${j['svc_p50_us']} µs`);
});

t.test('requests due before the end are sent after it when their connection frees up, and measured from their due time', async (t) => {
  const s = await server(1, 1500);
  t.teardown(() => s.srv.close());
  const r = await execa(mlload, ['--connect', `127.0.0.1:${s.port}`, '--rate', '100', '--connections', '1', '--duration-ms', '1000', '--timeout-ms', '3000'], { reject: false });
  t.equal(r.exitCode, 0, r.stdout);
  const j = JSON.parse(r.stdout.trim()) as Record<string, number>;
  t.equal(j['completed'], 100, 'all 100 requests due in the second');
  t.ok((j['p50_us'] ?? 0) >= 500_000, `they waited for the stalled one: p50 ${j['p50_us']} µs`);
});

t.test('a connection still stalled at the timeout: it and the requests behind it fail the run', async (t) => {
  const s = await server(1, 6000);
  t.teardown(() => s.srv.close());
  const r = await execa(mlload, ['--connect', `127.0.0.1:${s.port}`, '--rate', '100', '--connections', '1', '--duration-ms', '1000', '--timeout-ms', '1000'], { reject: false });
  t.equal(r.exitCode, 1);
  t.match(parseLoad(r.stdout).error, /timeouts 1, unsent 99/);
});
