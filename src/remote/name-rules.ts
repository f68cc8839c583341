/**
 * Which mailbox names a store can hold, described so the far side can answer
 * `mailboxNameProblem` itself: the engine asks it synchronously, for every mailbox of the
 * other side, before anything is written, and a question per name across the network would
 * cost a round trip each. The rules are those of the store kinds (Maildir++ or LAYOUT=fs,
 * mbox), applied by the same code the stores use.
 */
import type { MailboxName, MailStore } from '../storage/store.js';
import { parseLocation } from '../config/location.js';
import { MailferryError } from '../model/errors.js';
import { canonicalName } from '../model/mailbox-name.js';
import { MaildirLayout } from '../storage/maildir/layout.js';
import { mboxNameProblem } from '../storage/mbox/mailbox-name-problem.js';
import { fail, object, type Check } from './wire-check.js';

export type NameRules = { kind: 'any' } | { kind: 'maildir'; layout: 'fs' | 'maildir++' } | { kind: 'mbox' };

export const nameRules: Check<NameRules> = (v, path) => {
  const o = object(v, path);
  if (o.kind === 'any' || o.kind === 'mbox') return { kind: o.kind };
  if (o.kind === 'maildir') {
    if (o.layout !== 'fs' && o.layout !== 'maildir++') fail(`${path}.layout`, 'fs or maildir++', o.layout);
    return { kind: 'maildir', layout: o.layout };
  }
  // A newer peer's kind of store: its own checks still refuse what it cannot hold, later.
  return { kind: 'any' };
};

/** The rules of a store opened from `location` (a remote store passes on its peer's). */
export function nameRulesOf(store: MailStore, location: string): NameRules {
  const passed = (store as { nameRules?: NameRules }).nameRules;
  if (passed) return passed;
  if (!store.mailboxNameProblem) return { kind: 'any' };
  try {
    const loc = parseLocation(location);
    if (loc.kind === 'maildir') return { kind: 'maildir', layout: loc.layout };
    if (loc.kind === 'mbox') return { kind: 'mbox' };
  } catch {
    // not a location string this version parses: no rules to pass on
  }
  return { kind: 'any' };
}

export type NameProblem = (name: MailboxName, shape: { hasChildren: boolean; messages: number }) => string | undefined;

export function nameProblemOf(rules: NameRules): NameProblem | undefined {
  switch (rules.kind) {
    case 'any':
      return undefined;
    case 'mbox':
      return (name, shape) => {
        const canonical = canonicalName(name);
        return mboxNameProblem(canonical, canonical.join('/'), shape);
      };
    case 'maildir': {
      const layout = new MaildirLayout({ kind: 'maildir', raw: '', root: '/', inbox: '/', indexDir: '/', layout: rules.layout });
      return (name) => {
        try {
          layout.dirOf(name);
          return undefined;
        } catch (err) {
          if (err instanceof MailferryError) return `${err.message}; skip it with -x, or use ${rules.layout === 'fs' ? 'the Maildir++ layout' : 'LAYOUT=fs'}`;
          throw err;
        }
      };
    }
  }
}
