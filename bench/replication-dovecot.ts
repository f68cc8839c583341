/**
 * The Dovecot side of the replication case, as Dovecot 2.3's reference recipe has it
 * (dovecot-anchors.md, case 4): a primary instance with LMTP on 127.0.0.1, the notify and
 * replication plugins, the aggregator and the replicator, whose mail_replica is tcp: to the
 * doveadm server of a second instance holding the replicas. `lmtpOnly` gives the same primary
 * without replication, for delivering into mailferry's side the same way.
 *
 * Each service whose CPU counts as replication (replicator, aggregator, doveadm on both ends)
 * runs through the cgroup wrapper into group `repl`; LMTP into `lmtp`; each master, with the
 * rest of its instance (config, auth, log, anvil), into `other`. The aggregator is not
 * chrooted, so the wrapper can be found.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { groupName, userNameOf, type MailOwner } from './mail-owner.js';

export const DOVECOT_LIBEXEC = '/usr/lib/dovecot';
export const REPLICATION_SECRET = 'mailferry-bench-replication';

/** Groups the services are put in: the prefix of each one's executable. */
export interface ServiceWrap { repl: string[]; lmtp: string[] }

function header(name: string, base: string, owner: MailOwner): string {
  mkdirSync(join(base, 'run'), { recursive: true });
  mkdirSync(join(base, 'state'), { recursive: true });
  return `# replication case: ${name}
listen = 127.0.0.1
base_dir = ${base}/run
state_dir = ${base}/state
instance_name = mailferry-bench-${name}
log_path = ${base}/dovecot.log
stats_writer_socket_path =
ssl = no
first_valid_uid = ${owner.uid}
${owner.root ? '' : `default_internal_user = ${userNameOf(owner.uid)}\ndefault_internal_group = ${groupName(owner.gid)}\ndefault_login_user = ${userNameOf(owner.uid)}\n`}mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
}
`;
}

const exe = (wrap: string[], binary: string) => [...wrap, join(DOVECOT_LIBEXEC, binary)].join(' ');

/** Writes the primary's configuration into `base`; returns its path. */
export function writePrimaryConf(opts: {
  base: string; usersFile: string; owner: MailOwner; lmtpPort: number; wrap: ServiceWrap; replicaPort?: number;
}): string {
  const { base, owner, wrap } = opts;
  const mailUser = userNameOf(owner.uid);
  const replication = opts.replicaPort === undefined ? '' : `mail_plugins = notify replication
service replicator {
  executable = ${exe(wrap.repl, 'replicator')}
  process_min_avail = 1
  unix_listener replicator-doveadm {
    mode = 0600
  }
}
service aggregator {
  chroot =
  executable = ${exe(wrap.repl, 'aggregator')}
  fifo_listener replication-notify-fifo {
    user = ${mailUser}
  }
  unix_listener replication-notify {
    user = ${mailUser}
  }
}
service doveadm {
  executable = ${exe(wrap.repl, 'doveadm-server')}
}
doveadm_password = ${REPLICATION_SECRET}
plugin {
  mail_replica = tcp:127.0.0.1:${opts.replicaPort}
}
`;
  const conf = join(base, 'dovecot.conf');
  writeFileSync(conf, `${header(opts.replicaPort === undefined ? 'lmtp' : 'primary', base, owner)}protocols = lmtp
postmaster_address = postmaster@bench.invalid
passdb {
  driver = passwd-file
  args = scheme=PLAIN ${opts.usersFile}
}
userdb {
  driver = passwd-file
  args = ${opts.usersFile}
}
service lmtp {
  executable = ${exe(wrap.lmtp, 'lmtp')}
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${opts.lmtpPort}
  }
}
${replication}`);
  return conf;
}

/** Writes the replica instance's configuration (a doveadm server on `port`); returns its path. */
export function writeReplicaConf(opts: { base: string; replicas: string; owner: MailOwner; port: number; wrap: ServiceWrap }): string {
  const conf = join(opts.base, 'dovecot.conf');
  writeFileSync(conf, `${header('replica', opts.base, opts.owner)}protocols =
doveadm_password = ${REPLICATION_SECRET}
service doveadm {
  executable = ${exe(opts.wrap.repl, 'doveadm-server')}
  inet_listener {
    address = 127.0.0.1
    port = ${opts.port}
  }
}
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = static
  args = uid=${opts.owner.uid} gid=${opts.owner.gid} home=${opts.replicas}/%u
}
`);
  return conf;
}
