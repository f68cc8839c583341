/**
 * Opens the store a mail location names. The one place that knows every backend.
 */
import { parseLocation } from '../config/location.js';
import { MaildirStore, type MaildirStoreOptions } from './maildir/maildir-store.js';
import type { MailStore } from './store.js';

export interface OpenStoreOptions extends MaildirStoreOptions {
  /** Create the location when it does not exist (a sync destination); reading never creates. */
  create?: boolean;
}

export function openStore(location: string, options: OpenStoreOptions = {}): MailStore {
  const loc = parseLocation(location);
  return MaildirStore.open(loc, options);
}
