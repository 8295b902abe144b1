#!/bin/sh
# Creates hikyaku's system user and groups; safe to run again and again.
# Used by `make run` (as root), the system tests and the Debian postinst.
#   hikyaku        the user and group every unprivileged daemon runs as
#   hikyaku-drop   the group of the setgid maildrop helper (sendmail command)
set -eu
home=${HIKYAKU_HOME:-/var/spool/hikyaku}
if ! getent group hikyaku >/dev/null; then
    groupadd --system hikyaku
fi
if ! getent passwd hikyaku >/dev/null; then
    useradd --system --gid hikyaku --home-dir "$home" --no-create-home \
        --shell /usr/sbin/nologin --comment "hikyaku mail system" hikyaku
fi
if ! getent group hikyaku-drop >/dev/null; then
    groupadd --system hikyaku-drop
fi
# Debian's mail spool group; present on every Debian system, but make sure.
if ! getent group mail >/dev/null; then
    groupadd --system mail
fi
