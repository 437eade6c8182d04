/**
 * A strict reader for the YAML subset our compose file uses — block mappings and sequences, flow
 * sequences of scalars, plain / single- / double-quoted scalars, comments, anchors, aliases and
 * `<<` merge keys — so a test can check docker/compose.yaml without a YAML dependency or a
 * Docker engine. Anything outside the subset (tabs, block scalars, flow mappings, several
 * documents) is an error naming the line, never a silent misreading.
 */

export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

interface Line {
  readonly number: number;
  readonly indent: number;
  readonly text: string;
}

export class YamlSubsetError extends Error {}

/** Parses `source` (one document of the subset). */
export function parseYamlSubset(source: string): YamlValue {
  const lines: Line[] = [];
  source.split('\n').forEach((raw, i) => {
    if (raw.includes('\t')) throw new YamlSubsetError(`line ${i + 1}: tabs are not allowed`);
    const text = stripComment(raw, i + 1).trimEnd();
    if (text.trim() === '') return;
    if (text === '---' || text === '...') throw new YamlSubsetError(`line ${i + 1}: one document only`);
    lines.push({ number: i + 1, indent: text.length - text.trimStart().length, text: text.trimStart() });
  });
  const reader = new Reader(lines);
  const value = reader.block(0);
  if (!reader.done()) throw new YamlSubsetError(`line ${reader.peek()?.number}: unexpected indentation`);
  return value;
}

class Reader {
  private at = 0;
  private readonly anchors = new Map<string, YamlValue>();

  constructor(private readonly lines: Line[]) {}

  done(): boolean {
    return this.at >= this.lines.length;
  }

  peek(): Line | undefined {
    return this.lines[this.at];
  }

  /** A block node whose lines are indented exactly `indent`. */
  block(indent: number): YamlValue {
    const first = this.peek();
    if (first === undefined || first.indent < indent) return null;
    if (first.indent !== indent) throw new YamlSubsetError(`line ${first.number}: unexpected indentation`);
    return first.text.startsWith('- ') || first.text === '-' ? this.sequence(indent) : this.mapping(indent);
  }

  private sequence(indent: number): YamlValue[] {
    const items: YamlValue[] = [];
    for (let line = this.peek(); line !== undefined && line.indent === indent; line = this.peek()) {
      if (!(line.text.startsWith('- ') || line.text === '-')) {
        throw new YamlSubsetError(`line ${line.number}: expected a sequence item`);
      }
      const rest = line.text.slice(1).trimStart();
      if (rest === '') {
        this.at += 1;
        items.push(this.block(this.childIndent(indent)));
      } else if (isMappingEntry(rest)) {
        // "- key: value" starts a mapping whose keys sit where `key` does.
        const inner = indent + (line.text.length - rest.length);
        this.lines.splice(this.at, 1, { number: line.number, indent: inner, text: rest });
        items.push(this.mapping(inner));
      } else {
        this.at += 1;
        items.push(this.scalarOrFlow(rest, line.number));
      }
    }
    return items;
  }

  private mapping(indent: number): { [key: string]: YamlValue } {
    const out: { [key: string]: YamlValue } = {};
    /** Keys that came in through `<<`: an explicit key of the mapping overrides them. */
    const merged = new Set<string>();
    for (let line = this.peek(); line !== undefined && line.indent === indent; line = this.peek()) {
      const match = /^('[^']*'|"[^"]*"|[^\s'"][^:]*?):(?:\s+(.*))?$/.exec(line.text);
      if (match === null) throw new YamlSubsetError(`line ${line.number}: expected "key: value"`);
      const key = unquote(match[1], line.number);
      let rest = match[2] ?? '';
      this.at += 1;
      let anchor: string | undefined;
      const anchored = /^&([\w-]+)\s*(.*)$/.exec(rest);
      if (anchored !== null) {
        anchor = anchored[1];
        rest = anchored[2];
      }
      let value: YamlValue;
      if (rest === '') {
        const next = this.peek();
        // A sequence may sit at the key's own indentation ("key:\n- a"), or deeper.
        if (next !== undefined && next.indent === indent && next.text.startsWith('- '))
          value = this.sequence(indent);
        else value = next !== undefined && next.indent > indent ? this.block(next.indent) : null;
      } else {
        value = this.scalarOrFlow(rest, line.number);
      }
      if (anchor !== undefined) this.anchors.set(anchor, value);
      if (key === '<<') {
        if (typeof value !== 'object' || value === null || Array.isArray(value)) {
          throw new YamlSubsetError(`line ${line.number}: << merges a mapping`);
        }
        for (const [k, v] of Object.entries(value)) {
          if (!(k in out)) {
            out[k] = v;
            merged.add(k);
          }
        }
        continue;
      }
      if (Object.prototype.hasOwnProperty.call(out, key) && !merged.delete(key)) {
        throw new YamlSubsetError(`line ${line.number}: duplicate key ${key}`);
      }
      out[key] = value;
    }
    return out;
  }

  private childIndent(indent: number): number {
    const next = this.peek();
    if (next === undefined || next.indent <= indent) return indent + 1;
    return next.indent;
  }

  private scalarOrFlow(text: string, lineNumber: number): YamlValue {
    if (text.startsWith('*')) {
      const name = text.slice(1);
      const value = this.anchors.get(name);
      if (value === undefined) throw new YamlSubsetError(`line ${lineNumber}: unknown alias *${name}`);
      return value;
    }
    if (text.startsWith('[')) {
      if (!text.endsWith(']'))
        throw new YamlSubsetError(`line ${lineNumber}: a flow sequence must end on its line`);
      return splitFlow(text.slice(1, -1), lineNumber).map((item) => scalar(item, lineNumber));
    }
    if (text.startsWith('{') || text.startsWith('|') || text.startsWith('>')) {
      throw new YamlSubsetError(`line ${lineNumber}: flow mappings and block scalars are outside the subset`);
    }
    return scalar(text, lineNumber);
  }
}

function isMappingEntry(text: string): boolean {
  return /^('[^']*'|"[^"]*"|[^\s'"[{*&][^:]*?):(\s|$)/.test(text);
}

/** Removes a `#` comment (at line start or after a space) that is not inside quotes. */
function stripComment(raw: string, lineNumber: number): string {
  let quote: string | undefined;
  for (let i = 0; i < raw.length; i += 1) {
    const c = raw[i];
    if (quote !== undefined) {
      if (quote === '"' && c === '\\') i += 1;
      else if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') {
      const before = raw.slice(0, i).trimEnd();
      // Quotes only open a scalar at its start (after ": ", "- ", "[" or ",").
      if (before === '' || /[:\-[,]$/.test(before)) quote = c;
    } else if (c === '#' && (i === 0 || raw[i - 1] === ' ')) {
      return raw.slice(0, i);
    }
  }
  if (quote !== undefined) throw new YamlSubsetError(`line ${lineNumber}: unterminated quote`);
  return raw;
}

function splitFlow(body: string, lineNumber: number): string[] {
  const items: string[] = [];
  let current = '';
  let quote: string | undefined;
  for (let i = 0; i < body.length; i += 1) {
    const c = body[i];
    if (quote !== undefined) {
      current += c;
      if (quote === '"' && c === '\\') {
        current += body[i + 1];
        i += 1;
      } else if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') {
      quote = c;
      current += c;
    } else if (c === ',') {
      items.push(current.trim());
      current = '';
    } else if (c === '[' || c === '{') {
      throw new YamlSubsetError(`line ${lineNumber}: nested flow collections are outside the subset`);
    } else {
      current += c;
    }
  }
  if (current.trim() !== '') items.push(current.trim());
  return items;
}

function scalar(text: string, lineNumber: number): YamlValue {
  if (text.startsWith("'") || text.startsWith('"')) return unquote(text, lineNumber);
  if (text === 'null' || text === '~') return null;
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (/^-?\d+$/.test(text)) return Number(text);
  if (text.startsWith('&') || text.startsWith('!') || text.startsWith('@') || text.startsWith('`')) {
    throw new YamlSubsetError(`line ${lineNumber}: ${text[0]} is outside the subset here`);
  }
  return text;
}

function unquote(text: string, lineNumber: number): string {
  if (text.startsWith("'")) {
    if (!text.endsWith("'") || text.length < 2) throw new YamlSubsetError(`line ${lineNumber}: bad quoting`);
    return text.slice(1, -1).replace(/''/g, "'");
  }
  if (text.startsWith('"')) {
    if (!text.endsWith('"') || text.length < 2) throw new YamlSubsetError(`line ${lineNumber}: bad quoting`);
    const escapes: Record<string, string> = { n: '\n', r: '\r', t: '\t', '"': '"', '\\': '\\', '/': '/' };
    return text.slice(1, -1).replace(/\\(.)/g, (_, c: string) => {
      const replaced = escapes[c];
      if (replaced === undefined) throw new YamlSubsetError(`line ${lineNumber}: unsupported escape \\${c}`);
      return replaced;
    });
  }
  return text;
}
