// The JSON syntax check shared by the CNI call (stdin) and the installer (someone
// else's conflist): strict JSON (RFC 8259, what JSON.parse and Go's encoding/json
// accept), checked by a small scanner so that a decode error says where it failed
// in the same words on every Node version, never echoes the input, and nesting is
// bounded before anything walks the value.

/**
 * How deep a document may nest. A CNI config is a handful of levels deep (Go's
 * encoding/json stops at 10000); the bound keeps every recursive walk of ours
 * (the tree builder, its serializer) far from the stack limit.
 */
export const MAX_JSON_DEPTH = 64;

export interface JsonProblem {
  /** What is wrong, without quoting the input (characters are named, not echoed). */
  reason: string;
  /** 0-based offset in characters. */
  offset: number;
  /** 1-based line and column. */
  line: number;
  column: number;
}

type Expect = 'value' | 'valueOrEnd' | 'key' | 'keyOrEnd' | 'colon' | 'commaOrEnd' | 'eof';

/** The first syntax problem in `text`, or undefined when it is one valid JSON value nested at most `maxDepth` deep. */
export function findJsonProblem(text: string, maxDepth: number = MAX_JSON_DEPTH): JsonProblem | undefined {
  const stack: Array<'{' | '['> = [];
  let expect: Expect = 'value';
  let i = 0;
  const n = text.length;
  const fail = (reason: string, at = i): JsonProblem => problemAt(text, reason, at);
  const afterValue = (): Expect => (stack.length === 0 ? 'eof' : 'commaOrEnd');

  for (;;) {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
    if (i >= n) return expect === 'eof' ? undefined : fail('unexpected end of input');
    const ch = text[i] as string;
    switch (expect) {
      case 'eof':
        return fail(`unexpected ${describeChar(text, i)} after the end of the JSON value`);
      case 'colon':
        if (ch !== ':') return fail(`expected ':' after a property name, found ${describeChar(text, i)}`);
        i++;
        expect = 'value';
        continue;
      case 'commaOrEnd': {
        const close = stack[stack.length - 1] === '{' ? '}' : ']';
        if (ch === ',') {
          i++;
          expect = close === '}' ? 'key' : 'value';
        } else if (ch === close) {
          i++;
          stack.pop();
          expect = afterValue();
        } else {
          return fail(`expected ',' or '${close}', found ${describeChar(text, i)}`);
        }
        continue;
      }
      case 'keyOrEnd':
      case 'key': {
        if (expect === 'keyOrEnd' && ch === '}') {
          i++;
          stack.pop();
          expect = afterValue();
          continue;
        }
        if (ch !== '"') return fail(`expected a property name in double quotes, found ${describeChar(text, i)}`);
        const end = scanString(text, i);
        if (typeof end !== 'number') return end;
        i = end;
        expect = 'colon';
        continue;
      }
      case 'valueOrEnd':
      case 'value': {
        if (expect === 'valueOrEnd' && ch === ']') {
          i++;
          stack.pop();
          expect = afterValue();
          continue;
        }
        if (ch === '{' || ch === '[') {
          if (stack.length >= maxDepth) return fail(`nested deeper than ${maxDepth} levels`);
          stack.push(ch);
          i++;
          expect = ch === '{' ? 'keyOrEnd' : 'valueOrEnd';
          continue;
        }
        let end: number | JsonProblem;
        if (ch === '"') end = scanString(text, i);
        else if (ch === '-' || (ch >= '0' && ch <= '9')) end = scanNumber(text, i);
        else if (text.startsWith('true', i)) end = i + 4;
        else if (text.startsWith('false', i)) end = i + 5;
        else if (text.startsWith('null', i)) end = i + 4;
        else return fail(`unexpected ${describeChar(text, i)}`);
        if (typeof end !== 'number') return end;
        i = end;
        expect = afterValue();
        continue;
      }
    }
  }
}

/** Scan the string starting at the quote at `start`; returns the offset after the closing quote. */
function scanString(text: string, start: number): number | JsonProblem {
  let i = start + 1;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) return i + 1;
    if (c === 0x5c) {
      const e = text[i + 1];
      if (e === undefined) break;
      if ('"\\/bfnrt'.includes(e)) {
        i += 2;
        continue;
      }
      if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
        i += 6;
        continue;
      }
      return problemAt(text, 'invalid escape sequence in string', i);
    }
    if (c < 0x20) return problemAt(text, `control character ${describeChar(text, i)} in string`, i);
    i++;
  }
  return problemAt(text, 'unterminated string', n);
}

/** A JSON number literal (sticky: matched at lastIndex). */
export const NUMBER_RE = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** Scan a number at `start` (a '-' or digit is there); returns the offset after it. */
function scanNumber(text: string, start: number): number | JsonProblem {
  NUMBER_RE.lastIndex = start;
  const m = NUMBER_RE.exec(text);
  if (!m) return problemAt(text, 'invalid number', start);
  const end = start + m[0].length;
  // "01", "1.", "1e": the regexp stops early; the next character tells.
  const next = text[end];
  if (next !== undefined && /[0-9.eE+-]/.test(next)) return problemAt(text, 'invalid number', start);
  return end;
}

/** Name the character at `i` without echoing arbitrary input: printable ASCII is quoted, the rest is U+XXXX. */
export function describeChar(text: string, i: number): string {
  const cp = text.codePointAt(i);
  if (cp === undefined) return 'end of input';
  if (cp >= 0x21 && cp <= 0x7e) return `'${String.fromCodePoint(cp)}'`;
  return `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
}

function problemAt(text: string, reason: string, offset: number): JsonProblem {
  let line = 1;
  let lineStart = 0;
  for (let j = text.indexOf('\n'); j !== -1 && j < offset; j = text.indexOf('\n', j + 1)) {
    line++;
    lineStart = j + 1;
  }
  return { reason, offset, line, column: offset - lineStart + 1 };
}

export function formatJsonProblem(p: JsonProblem): string {
  return `${p.reason} at line ${p.line} column ${p.column} (character ${p.offset})`;
}
