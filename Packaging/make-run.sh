#!/bin/sh
# `make run`: a complete hikyaku under ./run/ with an embedded configuration,
# listening on 127.0.0.1:2525 and delivering local mail to ./run/mail/USER.
# As root it creates the hikyaku user (Packaging/create-users.sh) and runs
# with full privilege separation; as anyone else every program runs as that
# user, and the log says so. HIKYAKU_RUN_DIR and HIKYAKU_RUN_LISTEN move it
# elsewhere (the tests do, to keep 2525 free).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
run="${HIKYAKU_RUN_DIR:-$top/run}"
listen="${HIKYAKU_RUN_LISTEN:-127.0.0.1:2525}"
bin="${HIKYAKU_BIN:-$top/.build/debug}"
mkdir -p "$run/etc" "$run/mail"
chmod 755 "$run" "$run/etc"
if [ "$(id -u)" = 0 ]; then
    "$top/Packaging/create-users.sh"
    # The maildrop helper is setgid hikyaku-drop, as the package installs it.
    chgrp hikyaku-drop "$bin/hikyaku-drop" && chmod 2755 "$bin/hikyaku-drop"
    chown root:mail "$run/mail"
    chmod 2775 "$run/mail"
else
    chmod 700 "$run/mail"
fi
[ -f "$run/etc/aliases" ] || cat > "$run/etc/aliases" <<'ALIASES'
# Aliases for `make run` (sendmail format; edited files are picked up at once).
postmaster: root
abuse: postmaster
ALIASES
[ -f "$run/etc/local-host-names" ] || cat > "$run/etc/local-host-names" <<'NAMES'
# Domains this MTA receives mail for, besides its host name and localhost.
localhost.localdomain
NAMES
cat > "$run/etc/hikyaku.conf" <<CONF
# Written by \`make run\`; every other key has its built-in default
# (hikyaku.conf(5)).
queue_directory = $run/spool
daemon_directory = $bin
smtpd_listen = $listen
maillog_file = /dev/stderr
mail_spool_directory = $run/mail
alias_file = $run/etc/aliases
local_host_names_file = $run/etc/local-host-names
CONF
echo "hikyaku: listening on $listen, mail to $run/mail/USER, log on stderr; Ctrl-C stops" >&2
exec "$bin/master" -c "$run/etc/hikyaku.conf"
