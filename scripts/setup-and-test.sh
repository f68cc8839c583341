#!/usr/bin/env bash
# Sets up everything the test suite needs on a fresh Debian machine with Node 20, then runs
# it: Dovecot (with LMTP, for the replicator's notify tests), GNU mailutils' imap4d (an IMAP server without UIDPLUS), PostgreSQL and OpenSSH's
# server and client, and openssl, from Debian's packages (the tests start their own instances on
# loopback, use doveadm as an independent reader, reach remote locations through a throwaway sshd
# and make the certificates of mailferry server's TLS tests with openssl; Chromium shows them the
# replicator's status page), the npm dependencies (better-sqlite3 builds from source against
# Node's own headers; again whenever package-lock.json changed since), then `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v doveadm >/dev/null 2>&1 || [ ! -x /usr/lib/dovecot/imap ] || [ ! -x /usr/lib/dovecot/lmtp ] || ! command -v imap4d >/dev/null 2>&1 \
  || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
  || [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null 2>&1 || ! command -v ssh-keygen >/dev/null 2>&1 \
  || ! command -v openssl >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dovecot-core dovecot-imapd dovecot-lmtpd mailutils-imap4d postgresql \
    openssh-server openssh-client openssl chromium >/dev/null
fi

export npm_config_nodedir="${npm_config_nodedir:-/usr}"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
  || ! node -e "require('better-sqlite3')" >/dev/null 2>&1; then
  npm ci --no-audit --no-fund --foreground-scripts=false
fi
npm test
