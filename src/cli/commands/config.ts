/**
 * `mailferry config [-n] [--all] [SETTING...]`: Dovecot's `doveconf -n`. The effective
 * configuration (the file, then every -o) as TOML mailferry reads back, secrets masked.
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { DEFAULT_SETTINGS, SETTINGS } from '../../config/settings.js';
import { usageError } from '../../model/errors.js';
import type { GlobalOptions } from '../run.js';

/** Every setting with its description and default, for `mailferry config --help`. */
export function settingsHelp(): string {
  const keys = Object.keys(SETTINGS);
  const width = Math.max(...keys.map((k) => k.length));
  const rows = keys.map((k) => {
    const spec = SETTINGS[k]!;
    const fallback = (DEFAULT_SETTINGS as unknown as Record<string, unknown>)[k];
    const notes = [fallback === undefined ? undefined : `default ${String(fallback)}`, spec.secret ? 'printed masked' : undefined].filter(Boolean);
    return `  ${k.padEnd(width)}  ${spec.describe}${notes.length ? ` (${notes.join('; ')})` : ''}`;
  });
  return [
    '',
    'Settings (keys of the configuration file, and of -o setting=value):',
    ...rows,
    '',
    'Passwords are printed masked: secret settings, the [userdb] table\'s password and the',
    'password inside its connect string, and any password written in a URI (scheme://user:PASSWORD@host).',
  ].join('\n');
}

export function registerConfigCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('config')
    .description('print the effective configuration (the file, then -o) as TOML, secrets masked, as doveconf -n does')
    .argument('[setting...]', 'print only these settings, even when they have their default value')
    .option('-n, --non-default', 'only settings that differ from their defaults (the default)')
    .option('--all', 'every setting, with its description and default')
    .addHelpText('after', settingsHelp())
    .action(async (names: string[], opts: { nonDefault?: boolean; all?: boolean }) => {
      if (opts.nonDefault && opts.all) throw usageError('-n and --all cannot be combined: -n prints only what differs from the defaults, --all everything');
      // The file's parser and the printer load for this command only.
      const [{ loadConfig }, { checkSettingNames, renderConfig }] = await Promise.all([import('../../config/config-file.js'), import('../../config/config-toml.js')]);
      // Before reading the file: a misspelt argument is the mistake to report, not the file's.
      checkSettingNames(names);
      const g = globals();
      const loaded = loadConfig(g.config, g.o);
      process.stdout.write(renderConfig(loaded.settings, { mode: opts.all ? 'all' : 'changed', names, file: loaded.file === undefined ? undefined : resolve(loaded.file), overrides: g.o }));
    });
}
