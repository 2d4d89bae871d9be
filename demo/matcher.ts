/**
 * @module Occupation matcher for the demo coding service: free text in, ranked ANZSCO codes out.
 *
 * Pure and deterministic, no dependencies: the caller loads the occupation list (see
 * `parseOccupations`) and hands it to `createMatcher`, which does every piece of work that does not
 * depend on the input (tokenising titles and keywords, document frequencies, an inverted index) once,
 * so coding a record only looks up the tokens it has.
 *
 * Scoring, in short: every input token that an occupation knows earns its inverse document
 * frequency, times 1.5 if it is part of the occupation's title or one of its keyword phrases written
 * out whole, else 1 if it is a title word or 0.5 if it is a keyword word. The occupation text counts
 * twice as much as the tasks text. The confidence is that score over the best score the input could
 * earn, scaled down a little for title words the input does not mention. It is a demo heuristic, not
 * the ABS's model.
 */

/** One occupation as stored in `demo/data/occupations.json`. */
export interface Occupation {
  /** Six-digit ANZSCO occupation code, e.g. "261312". */
  code: string;
  /** ANZSCO title, e.g. "Developer Programmer". */
  title: string;
  /** Words and short phrases people use for this job or its tasks (synonyms, typical duties). */
  keywords: string[];
}

/** One suggestion, in the field names of the ABS Coding Service's answer. */
export interface Suggestion {
  codeCategory: string;
  codeLabel: string;
  /** In (0, 1], two decimals. */
  codeConfidence: number;
}

/** The record to code: what the respondent wrote. */
export interface CodingInput {
  /** Occupation title as written ("software developer"); weighted higher. */
  occp_text: string;
  /** Main tasks and duties as written; optional. */
  tasks_text?: string;
}

export interface Matcher {
  /** How many occupations it codes to. */
  readonly size: number;
  /** Up to `limit` suggestions, best first; empty when no word of the input is known. */
  code(input: CodingInput, limit: number): Suggestion[];
}

/** How much a token matched in the occupation text counts against one in the tasks text. */
const OCCP_WEIGHT = 2;
const TASKS_WEIGHT = 1;
/** What a token earns for being in a whole title or keyword phrase, a title word, a keyword word. */
const PHRASE_MATCH = 1.5;
const TITLE_MATCH = 1;
const KEYWORD_MATCH = 0.5;
/** Tasks text rarely is all explained by one occupation: it counts this much of its best towards 100 %. */
const TASKS_EXPECTED = 0.75;
/** Floor of the title-coverage factor: an occupation none of whose title words appear keeps this much. */
const COVERAGE_FLOOR = 0.75;

const STOPWORDS = new Set(
  (
    'a an and the of for in on at to with by from as or is are be been was were am i im my me we our ' +
    'you your they their them he she his her this that these those it its into onto over under up out ' +
    'about also all any some such etc eg ie other others do does did doing done not no yes can will ' +
    'work works working worked job jobs role position duty duties responsible responsibility ' +
    'responsibilities include including various day daily nec general excluding aus nz'
  ).split(' '),
);

/**
 * Lower-case words with plurals folded ("Nurses" → "nurse"), stopwords and one-letter words dropped.
 * "IT" written in capitals becomes "ict", ANZSCO's word for it, so "IT support" is not "it".
 */
export function tokenize(text: string): string[] {
  const spelled = text
    .replace(/\bIT\b/g, ' ict ')
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/['\u2019]/g, '');
  const tokens: string[] = [];
  for (const word of spelled.split(/[^a-z0-9]+/)) {
    if (word.length < 2 || STOPWORDS.has(word)) continue;
    tokens.push(stem(word));
  }
  return tokens;
}

/** Folds the common English plurals; the same function runs on data and input, so it need only be consistent. */
function stem(word: string): string {
  if (word.length > 4 && word.endsWith('ies')) return `${word.slice(0, -3)}y`;
  if (word.endsWith('sses')) return word.slice(0, -2);
  if (word.length > 3 && word.endsWith('s') && !/(ss|us|is)$/.test(word)) return word.slice(0, -1);
  return word;
}

/**
 * Checks the shape of the occupation list (as parsed from JSON) and returns it typed.
 * Throws an Error naming the first bad entry.
 */
export function parseOccupations(value: unknown): Occupation[] {
  if (!Array.isArray(value)) throw new Error('occupations: expected a JSON array');
  const seen = new Set<string>();
  return value.map((entry: unknown, i): Occupation => {
    const where = `occupations[${i}]`;
    if (typeof entry !== 'object' || entry === null) throw new Error(`${where}: expected an object`);
    const { code, title, keywords } = entry as Record<string, unknown>;
    if (typeof code !== 'string' || !/^\d{6}$/.test(code)) throw new Error(`${where}: "code" must be six digits`);
    if (seen.has(code)) throw new Error(`${where}: code ${code} appears twice`);
    seen.add(code);
    if (typeof title !== 'string' || tokenize(title).length === 0) throw new Error(`${where}: "title" must be a non-empty string`);
    if (!Array.isArray(keywords) || !keywords.every((k): k is string => typeof k === 'string')) {
      throw new Error(`${where}: "keywords" must be an array of strings`);
    }
    return { code, title, keywords };
  });
}

/** An occupation with everything the scorer needs worked out ahead. */
interface Indexed {
  occupation: Occupation;
  /** token → TITLE_MATCH or KEYWORD_MATCH (the higher when both). */
  weights: Map<string, number>;
  titleTokens: Set<string>;
  /** Token sequences whose appearance as written earns PHRASE_MATCH: title, title head, each keyword. */
  phrases: string[][];
}

/** One whole phrase of one occupation (its index in the list), filed under its first token. */
interface PhraseEntry {
  occupation: number;
  tokens: readonly string[];
}

/** One occupation that knows a token: how much the token earns there, and whether it is a title word. */
interface Posting {
  occupation: number;
  weight: number;
  inTitle: boolean;
}

/** Builds a matcher over these occupations (assumed already checked by `parseOccupations`). */
export function createMatcher(occupations: readonly Occupation[]): Matcher {
  const indexed = occupations.map(indexOccupation);

  // Scoring walks these lists from the input's tokens, so coding a record touches only the
  // (occupation, token) pairs that earn something, never every token against every candidate; and
  // phrases are looked up by their first token. A 300-record batch of the commonest words went from
  // ~70 ms to a few ms (see the speed note in the demo tests).
  const byToken = new Map<string, Posting[]>();
  const phrasesByFirst = new Map<string, PhraseEntry[]>();
  indexed.forEach((o, i) => {
    for (const [token, weight] of o.weights) {
      const posting = { occupation: i, weight, inTitle: o.titleTokens.has(token) };
      const list = byToken.get(token);
      if (list === undefined) byToken.set(token, [posting]);
      else list.push(posting);
    }
    for (const tokens of o.phrases) {
      const first = tokens[0];
      if (first === undefined) continue;
      const list = phrasesByFirst.get(first);
      if (list === undefined) phrasesByFirst.set(first, [{ occupation: i, tokens }]);
      else list.push({ occupation: i, tokens });
    }
  });
  const idf = new Map<string, number>();
  for (const [token, list] of byToken) idf.set(token, Math.log(1 + indexed.length / list.length));

  /** Per occupation, the tokens of `text` covered by one of its phrases appearing in it contiguously. */
  function phraseHits(text: readonly string[]): Map<number, Set<string>> {
    const hits = new Map<number, Set<string>>();
    for (let start = 0; start < text.length; start++) {
      for (const phrase of phrasesByFirst.get(text[start] ?? '') ?? []) {
        const n = phrase.tokens.length;
        if (start + n > text.length) continue;
        let k = 1;
        while (k < n && text[start + k] === phrase.tokens[k]) k++;
        if (k < n) continue;
        let covered = hits.get(phrase.occupation);
        if (covered === undefined) hits.set(phrase.occupation, (covered = new Set()));
        for (const t of phrase.tokens) covered.add(t);
      }
    }
    return hits;
  }

  return {
    size: indexed.length,
    code(input: CodingInput, limit: number): Suggestion[] {
      const fields = [
        { tokens: tokenize(input.occp_text), weight: OCCP_WEIGHT, expected: 1 },
        { tokens: tokenize(input.tasks_text ?? ''), weight: TASKS_WEIGHT, expected: TASKS_EXPECTED },
      ].map((f) => ({ ...f, known: [...new Set(f.tokens)].filter((t) => idf.has(t)) }));

      // The best an occupation could earn for this input: every known token in a phrase it matches whole.
      let best = 0;
      for (const f of fields) {
        for (const t of f.known) best += f.weight * f.expected * PHRASE_MATCH * (idf.get(t) ?? 0);
      }
      if (best === 0) return [];

      // Summed in the same order for every occupation (field by field, token by token).
      const score = new Float64Array(indexed.length);
      const touched: number[] = [];
      for (const f of fields) {
        const hits = phraseHits(f.tokens);
        for (const t of f.known) {
          for (const p of byToken.get(t) ?? []) {
            if (score[p.occupation] === 0) touched.push(p.occupation);
            const match = hits.get(p.occupation)?.has(t) === true ? PHRASE_MATCH : p.weight;
            score[p.occupation] = (score[p.occupation] ?? 0) + f.weight * match * (idf.get(t) ?? 0);
          }
        }
      }
      const titleWordsSaid = new Uint16Array(indexed.length);
      for (const t of new Set(fields.flatMap((f) => f.known))) {
        for (const p of byToken.get(t) ?? []) if (p.inTitle) titleWordsSaid[p.occupation] = (titleWordsSaid[p.occupation] ?? 0) + 1;
      }

      const ranked: { o: Indexed; confidence: number }[] = [];
      for (const i of touched) {
        const o = indexed[i];
        if (o === undefined) continue;
        const coverage = (titleWordsSaid[i] ?? 0) / o.titleTokens.size;
        const confidence = Math.min(1, (score[i] ?? 0) / best) * (COVERAGE_FLOOR + (1 - COVERAGE_FLOOR) * coverage);
        if (confidence > 0) ranked.push({ o, confidence });
      }

      // Codes are six digits: plain comparison orders them (localeCompare cost more than the scoring).
      ranked.sort((a, b) => b.confidence - a.confidence || byCode(a.o.occupation.code, b.o.occupation.code));
      return ranked.slice(0, Math.max(0, limit)).map(({ o, confidence }) => ({
        codeCategory: o.occupation.code,
        codeLabel: o.occupation.title,
        codeConfidence: Math.max(0.01, Math.round(confidence * 100) / 100),
      }));
    },
  };
}

function indexOccupation(occupation: Occupation): Indexed {
  const titleTokens = tokenize(occupation.title);
  const weights = new Map<string, number>();
  for (const t of titleTokens) weights.set(t, TITLE_MATCH);
  const phrases = [titleTokens];
  const head = tokenize(occupation.title.replace(/\(.*$/, ''));
  if (head.length > 0 && head.length < titleTokens.length) phrases.push(head);
  for (const keyword of occupation.keywords) {
    const tokens = tokenize(keyword);
    if (tokens.length === 0) continue;
    phrases.push(tokens);
    for (const t of tokens) if (!weights.has(t)) weights.set(t, KEYWORD_MATCH);
  }
  return { occupation, weights, titleTokens: new Set(titleTokens), phrases };
}

function byCode(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
