/**
 * imapflow, loaded when the first connection is made rather than when the store's modules are.
 * Its CommonJS build is taken on purpose: node loads it in about half the CPU time of the ES
 * module build (0.15 s against 0.26 s with node's own start-up, on the benchmark machine),
 * which is most of what a run that finds nothing to do costs. Both builds are the same code.
 */
import { createRequire } from 'node:module';

type ImapFlowModule = typeof import('imapflow');

let loaded: ImapFlowModule | undefined;

export function loadImapFlow(): ImapFlowModule {
  loaded ??= createRequire(import.meta.url)('imapflow') as ImapFlowModule;
  return loaded;
}
