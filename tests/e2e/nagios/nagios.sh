#!/usr/bin/env bash
# nagios.sh -- a real Nagios Core 4 (Debian's nagios4-core + nagios4-cgi) on loopback for the e2e tier.
#
# Usage: tests/e2e/nagios/nagios.sh install|up|down|command LINE
#   install  apt-get the Debian packages when missing (nagios4-core nagios4-cgi lighttpd php-cgi),
#            without letting the packages start their own services (policy-rc.d for the install)
#   up       (re)start from a clean state under $NAGIOS_E2E_DIR (default ${TMPDIR:-/tmp}/e2e-nagios):
#            nagios4 with the objects of objects.cfg (passive checks only: states are what the test
#            forces), lighttpd on 127.0.0.1:$NAGIOS_E2E_PORT (default 8098) serving the CGIs under
#            /nagios/cgi-bin/ with basic auth (nagiosadmin / $NAGIOS_E2E_PASSWORD, default nagios);
#            exits 0 once statusjson.cgi answers with the configured services
#   down     stop what up started (by the pids it wrote; never by name)
#   command  write one external command line ("[time] " is prepended) to Nagios' command file
# Reload (after editing $NAGIOS_E2E_DIR/etc/objects.cfg): kill -HUP "$(cat $NAGIOS_E2E_DIR/run/nagios.pid)".
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR=${NAGIOS_E2E_DIR:-${TMPDIR:-/tmp}/e2e-nagios}
PORT=${NAGIOS_E2E_PORT:-8098}
PASSWORD=${NAGIOS_E2E_PASSWORD:-nagios}
PKGS=(nagios4-core nagios4-cgi lighttpd php-cgi)
SUDO=(); [ "$(id -u)" = 0 ] || SUDO=(sudo)

die() { echo "nagios.sh: $*" >&2; exit 1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

install_() {
  local missing=() p
  for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -gt 0 ] || { echo "nagios.sh: packages present (${PKGS[*]})"; return 0; }
  echo "nagios.sh: apt-get install ${missing[*]}"
  # the packages would start nagios4 and lighttpd (port 80, every address): forbid it for this install
  local rc=/usr/sbin/policy-rc.d had=0
  [ -e "$rc" ] && had=1 && "${SUDO[@]}" cp "$rc" "$rc.e2e-nagios"
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$rc" > /dev/null && "${SUDO[@]}" chmod +x "$rc"
  local ok=0
  { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${missing[@]}"; } > "${TMPDIR:-/tmp}/e2e-nagios-apt.log" 2>&1 || ok=1
  if [ "$had" = 1 ]; then "${SUDO[@]}" mv "$rc.e2e-nagios" "$rc"; else "${SUDO[@]}" rm -f "$rc"; fi
  [ "$ok" = 0 ] || { tail -20 "${TMPDIR:-/tmp}/e2e-nagios-apt.log" >&2; die "apt-get failed"; }
}

render() {  # render TEMPLATE OUTPUT
  sed -e "s|@DIR@|$DIR|g" -e "s|@PORT@|$PORT|g" "$HERE/$1" > "$2"
}

stop_pid() {  # stop_pid FILE: SIGTERM, wait up to 10 s, then SIGKILL
  local f=$1 pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f"); rm -f "$f"
  [ -n "$pid" ] && kill -0 "$pid" 2> /dev/null || return 0
  grep -qa "$DIR" "/proc/$pid/cmdline" 2> /dev/null || return 0   # not ours
  kill "$pid" 2> /dev/null || true
  for i in $(seq 1 50); do kill -0 "$pid" 2> /dev/null || return 0; sleep 0.2; done
  kill -9 "$pid" 2> /dev/null || true
}

down() {
  stop_pid "$DIR/run/lighttpd.pid"
  stop_pid "$DIR/run/nagios.pid"
}

answering() {
  curl -fsS -u "nagiosadmin:$PASSWORD" \
    "http://127.0.0.1:$PORT/nagios/cgi-bin/statusjson.cgi?query=servicelist" 2> /dev/null | grep -q '"servicelist"'
}

up() {
  for p in "${PKGS[@]}"; do installed "$p" || die "$p is not installed (run: $0 install)"; done
  down
  if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then die "port $PORT on 127.0.0.1 is taken"; fi
  rm -rf "$DIR"
  mkdir -p "$DIR/etc" "$DIR/var/spool/checkresults" "$DIR/var/archives" "$DIR/rw" "$DIR/run" "$DIR/log"
  render nagios.cfg.in "$DIR/etc/nagios.cfg"
  render cgi.cfg.in "$DIR/etc/cgi.cfg"
  render lighttpd.conf.in "$DIR/etc/lighttpd.conf"
  cp "$HERE/objects.cfg" "$DIR/etc/objects.cfg"
  : > "$DIR/etc/resource.cfg"
  printf 'nagiosadmin:%s\n' "$PASSWORD" > "$DIR/etc/htpasswd.plain"
  chown -R nagios:nagios "$DIR/var" "$DIR/rw" "$DIR/run" "$DIR/log"
  chmod 2775 "$DIR/rw"
  chmod 0644 "$DIR/etc/"*
  chmod 0755 "$DIR" "$DIR/etc"
  /usr/sbin/nagios4 -v "$DIR/etc/nagios.cfg" > "$DIR/log/verify.log" 2>&1 || { cat "$DIR/log/verify.log" >&2; die "config check failed"; }
  /usr/sbin/nagios4 -d "$DIR/etc/nagios.cfg"
  /usr/sbin/lighttpd -f "$DIR/etc/lighttpd.conf"
  local i
  for i in $(seq 1 100); do answering && break; sleep 0.2; done
  answering || { tail -20 "$DIR/log/"*.log >&2 || true; die "statusjson.cgi does not answer on 127.0.0.1:$PORT"; }
  echo "nagios.sh: up: http://127.0.0.1:$PORT/nagios/cgi-bin/statusjson.cgi (nagiosadmin), dir $DIR"
}

command_() {
  [ -p "$DIR/rw/nagios.cmd" ] || die "no command file $DIR/rw/nagios.cmd (is nagios up?)"
  printf '[%s] %s\n' "$(date +%s)" "$*" > "$DIR/rw/nagios.cmd"
}

case "${1:-}" in
  install) install_ ;;
  up) up ;;
  down) down ;;
  command) shift; command_ "$@" ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
