# Shared by the scripts of scripts/services/ (sourced, not run): a server started in the
# background with its pid in $STATE/pid, a port kept in $STATE/port, a bounded wait until it
# answers, and a stop that does not hang. A script sets STATE before it sources this file.

# The port: $1 (an environment override) when set, else a free one on 127.0.0.1 picked on first
# use and kept in the state directory, so that a restarted server answers at the same URL.
service_port() {
  if [ -n "${1:-}" ]; then
    echo "$1"
    return
  fi
  if [ ! -s "$STATE/port" ]; then
    mkdir -p "$STATE"
    node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })' >"$STATE/port"
  fi
  cat "$STATE/port"
}

# Whether the process of $STATE/pid (or of the pid file $1) is alive.
service_running() {
  local file="$STATE/${1:-pid}"
  [ -f "$file" ] && kill -0 "$(cat "$file")" 2>/dev/null
}

# Stops the process of the pid file $1 (default pid): TERM, up to 5 s, then KILL.
service_stop() {
  local file="$STATE/${1:-pid}" pid
  if service_running "${1:-pid}"; then
    pid="$(cat "$file")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

# Waits until the command $2 succeeds, up to $3 tries 0.2 s apart while the server runs, then
# says "<$1>: ready on <$4>"; otherwise prints the logs named after it and exits 1.
service_wait() {
  local name=$1 check=$2 tries=$3 url=$4
  shift 4
  for _ in $(seq 1 "$tries"); do
    if "$check"; then
      echo "$name: ready on $url (pid $(cat "$STATE/pid"))" >&2
      return 0
    fi
    service_running || break
    sleep 0.2
  done
  echo "$name: the server did not become ready; its log:" >&2
  tail -n 30 "$@" >&2 || true
  exit 1
}

# Whether 127.0.0.1:$1 answers the request $2 with a reply that contains $3 (within 2 s).
service_answers() {
  local reply
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf '%b' "$2" >&3
  reply="$(timeout 2 cat <&3 || true)"
  exec 3<&- 3>&-
  [[ "$reply" == *"$3"* ]]
}
