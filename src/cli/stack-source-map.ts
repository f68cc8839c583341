/**
 * Stack traces of the built bundle name the sources (src/...ts:LINE:COL), as Node's
 * --enable-source-maps would, but a bundle's source map is read only when a stack is formatted:
 * with source maps on, Node 20 reads and parses the map of every module as it loads it, about
 * 9 ms of every run, for the rare stack an internal error prints. The build makes this module the
 * first one of each process it bundles (scripts/build.mjs); run from the sources it is not used.
 */
import { readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const maps = new Map<string, SourceMap | null>();

function mapOf(file: string): SourceMap | null {
  let map = maps.get(file);
  if (map === undefined) {
    try {
      map = new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8')));
    } catch {
      map = null;
    }
    maps.set(file, map);
  }
  return map;
}

const pathOf = (name: string) => (name.startsWith('file:') ? fileURLToPath(name) : name);

/** `SOURCE:LINE:COL` of a frame in a built file that has a map; undefined for any other frame. */
export function sourcePosition(fileName: string, line: number, column: number): string | undefined {
  if (!/\.js$/.test(fileName)) return undefined;
  const file = pathOf(fileName);
  const entry = mapOf(file)?.findEntry(line - 1, column - 1);
  if (!entry || !('originalSource' in entry) || typeof entry.originalSource !== 'string') return undefined;
  const source = entry.originalSource.startsWith('file:') ? fileURLToPath(entry.originalSource) : resolve(dirname(file), entry.originalSource);
  return `${source}:${entry.originalLine + 1}:${entry.originalColumn + 1}`;
}

function frame(site: NodeJS.CallSite): string {
  const text = site.toString();
  const name = site.getFileName();
  const line = site.getLineNumber();
  const column = site.getColumnNumber();
  if (!name || line === null || column === null) return text;
  const at = sourcePosition(name, line, column);
  return at === undefined ? text : text.replace(`${name}:${line}:${column}`, at);
}

Error.prepareStackTrace = (err: Error, sites: NodeJS.CallSite[]): string => {
  let head: string;
  try {
    head = String(err);
  } catch {
    head = 'Error';
  }
  // A frame that cannot be mapped keeps its built position: a stack is never lost for a map.
  return [head, ...sites.map((s) => {
    try {
      return `    at ${frame(s)}`;
    } catch {
      return `    at ${s.toString()}`;
    }
  })].join('\n');
};
