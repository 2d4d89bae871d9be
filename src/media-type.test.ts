/**
 * media-type.ts unit by unit: what is one RFC 9110 media type, what is not (lists, malformed
 * types, a parameter twice), and which charset labels name an encoding in which ASCII is not ASCII.
 */
import { describe, expect, it } from 'vitest';
import { asciiIncompatible, parseMediaType } from './media-type';

describe('parseMediaType', () => {
  it('one type with parameters: essence lower-cased, names lower-cased, quoted values unquoted', () => {
    const t = parseMediaType('Text/Plain ; Charset="utf-8" ;format=flowed;');
    expect(t?.essence).toBe('text/plain');
    expect(Object.fromEntries(t!.params)).toEqual({ charset: 'utf-8', format: 'flowed' });
    expect(parseMediaType('multipart/form-data; boundary="a \\"b\\""')?.params.get('boundary')).toBe('a "b"');
    expect(parseMediaType('application/vnd.api+json')?.essence).toBe('application/vnd.api+json');
  });

  it.each([
    'application/json, text/html',
    'text/plain;, text/html',
    'text/csv;, application/json',
    'text/plain; charset=utf-8; charset=utf-16',
    'text/plain; CHARSET=utf-8; charset=utf-8',
    'text/html extra',
    'text / html',
    'text/',
    '/json',
    'text',
    '',
    'text/plain; charset',
    'text/plain; charset=',
    'text/plain; charset = utf-8',
    'text/plain; charset="utf-8',
    'text/plain; charset=utf 8',
    'text/plain,',
    'text/html\u0000',
  ])('%j is not one media type', (value) => {
    expect(parseMediaType(value)).toBeUndefined();
  });
});

describe('asciiIncompatible', () => {
  it('every WHATWG label of UTF-16BE/LE, ISO-2022-JP and replacement, and UTF-32 labels, in any case and with WHATWG whitespace', () => {
    const labels = ['unicodefffe', 'utf-16be', 'csunicode', 'iso-10646-ucs-2', 'ucs-2', 'unicode', 'unicodefeff', 'utf-16', 'utf-16le', 'csiso2022jp', 'iso-2022-jp', 'csiso2022kr', 'hz-gb-2312', 'iso-2022-cn', 'iso-2022-cn-ext', 'iso-2022-kr', 'replacement', 'utf-32', 'utf-32le', 'utf-32be'];
    for (const label of labels) {
      expect(asciiIncompatible(label), label).toBe(true);
      expect(asciiIncompatible(` \t${label.toUpperCase()}\n\f\r`), label).toBe(true);
    }
  });

  it('ASCII-compatible labels pass (their ASCII bytes are ASCII, where the token is found)', () => {
    for (const label of ['utf-8', 'UTF8', 'windows-1252', 'latin1', 'shift_jis', 'euc-kr', 'gb18030', 'big5', 'x-user-defined', 'koi8-r']) expect(asciiIncompatible(label), label).toBe(false);
  });
});
