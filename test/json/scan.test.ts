// The JSON scanner must agree with JSON.parse on what is JSON, and say where it fails.
import t from 'tap';
import { findJsonProblem, formatJsonProblem } from '../../src/json/scan.js';

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

t.test('valid JSON is accepted', async (t) => {
  for (const text of ['{}', '[]', '0', '-0.5e+10', '"x"', 'true', 'false', 'null', ' {"a":[1,2,{"b":null}],"c":"\\u00e9\\n"} ', '\n\t{"a" : 1}\r\n', '[[[]]]', '"\ud800"']) {
    t.equal(findJsonProblem(text, 64), undefined, text);
  }
});

t.test('problems and where they are', async (t) => {
  const cases: Array<[string, string]> = [
    ['', 'unexpected end of input at line 1 column 1 (character 0)'],
    ['{"cniVersion":"1.0.0","name":"x"', "unexpected end of input at line 1 column 33 (character 32)"],
    ['{\n  "a": 1,\n  "b": }', "unexpected '}' at line 3 column 8 (character 19)"],
    ['{"a":1,}', "expected a property name in double quotes, found '}' at line 1 column 8 (character 7)"],
    ['[1,]', "unexpected ']' at line 1 column 4 (character 3)"],
    ['{"a" 1}', "expected ':' after a property name, found '1' at line 1 column 6 (character 5)"],
    ['{"a":1 "b":2}', "expected ',' or '}', found '\"' at line 1 column 8 (character 7)"],
    ['[1 2]', "expected ',' or ']', found '2' at line 1 column 4 (character 3)"],
    ['{} {}', "unexpected '{' after the end of the JSON value at line 1 column 4 (character 3)"],
    ['{"a":"\u0000"}', 'control character U+0000 in string at line 1 column 7 (character 6)'],
    ['\u0000', 'unexpected U+0000 at line 1 column 1 (character 0)'],
    ['{"a":"x\\q"}', 'invalid escape sequence in string at line 1 column 8 (character 7)'],
    ['{"a":"\\u12"}', 'invalid escape sequence in string at line 1 column 7 (character 6)'],
    ['"abc', 'unterminated string at line 1 column 5 (character 4)'],
    ['01', 'invalid number at line 1 column 1 (character 0)'],
    ['1.', 'invalid number at line 1 column 1 (character 0)'],
    ['-', 'invalid number at line 1 column 1 (character 0)'],
    ['1e', 'invalid number at line 1 column 1 (character 0)'],
    ['tru', "unexpected 't' at line 1 column 1 (character 0)"],
    ["{'a':1}", "expected a property name in double quotes, found ''' at line 1 column 2 (character 1)"],
    ['\ufeff{}', 'unexpected U+FEFF at line 1 column 1 (character 0)'],
    ['{"a":NaN}', "unexpected 'N' at line 1 column 6 (character 5)"],
    ['{"a":\u00e9}', 'unexpected U+00E9 at line 1 column 6 (character 5)'],
  ];
  for (const [text, want] of cases) {
    const p = findJsonProblem(text, 64);
    t.equal(p && formatJsonProblem(p), want, JSON.stringify(text));
    t.notOk(parses(text), `JSON.parse refuses ${JSON.stringify(text)} too`);
  }
});

t.test('nesting is bounded', async (t) => {
  t.equal(findJsonProblem('[[[1]]]', 3), undefined);
  const p = findJsonProblem('[[[[1]]]]', 3);
  t.equal(p && formatJsonProblem(p), 'nested deeper than 3 levels at line 1 column 4 (character 3)');
  const deep = '['.repeat(200000) + ']'.repeat(200000);
  t.equal(findJsonProblem(deep, 64)?.reason, 'nested deeper than 64 levels', 'no recursion: a huge depth is just refused');
});

t.test('agrees with JSON.parse on random inputs', async (t) => {
  // Deterministic pseudo-random mutations of a real config.
  const base = '{"cniVersion":"1.0.0","name":"k8s","type":"meshlane","x":[1,-2.5e3,true,null,"s\\n\\u00e9"],"o":{}}';
  const alphabet = '{}[]",:\\ 0123456789.-+eEtrufalsn\u0000\n\t\u00e9';
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  let disagreements = 0;
  for (let i = 0; i < 5000; i++) {
    let s = base;
    const edits = 1 + rand(3);
    for (let e = 0; e < edits; e++) {
      const at = rand(s.length + 1);
      const op = rand(3);
      const ch = alphabet[rand(alphabet.length)] ?? ' ';
      if (op === 0) s = s.slice(0, at) + ch + s.slice(at);
      else if (op === 1) s = s.slice(0, at) + s.slice(at + 1);
      else s = s.slice(0, at) + ch + s.slice(at + 1);
    }
    if ((findJsonProblem(s, 64) === undefined) !== parses(s)) {
      disagreements++;
      t.fail(`disagree on ${JSON.stringify(s)}`);
    }
  }
  t.equal(disagreements, 0);
});
