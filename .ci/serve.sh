# Sourced by .ci/test, .ci/schemathesis and .ci/image-check: starts a Release server and
# waits for it to say where it listens. Nothing polls: the server binds the port it is
# given (port 0: one the kernel picks, so no port chosen beforehand can be taken by
# someone else in between) and then writes "Release listening on http://ADDR:PORT ..." once
# its data is loaded. That line is read as the server writes it.
#
#   start_server LOG COMMAND...
#
# COMMAND's output goes to LOG. Sets SERVER_PID and SERVER_PORT, and SERVER_LOG_PID: the
# copy to LOG, which ends once the server has (wait for it before reading LOG's last lines). Fails (with the log
# printed) when the line has not come within 20 s, or the server stopped first.
start_server() {
  local log=$1
  shift
  local fifo
  fifo=$(mktemp -u)
  mkfifo "$fifo"
  "$@" > "$fifo" 2>&1 &
  SERVER_PID=$!
  # Held open for reading and writing, so the server's open of the FIFO returns at once
  # and its writes never find the FIFO without a reader.
  local fd
  exec {fd}<>"$fifo"
  SERVER_PORT=""
  local line left
  local deadline=$((SECONDS + 20))
  while left=$((deadline - SECONDS)) && [ "$left" -gt 0 ] && IFS= read -r -t "$left" line <&"$fd"; do
    printf '%s\n' "$line" >> "$log"
    if [[ $line =~ Release\ listening\ on\ http://[^[:space:]]*:([0-9]+) ]]; then
      SERVER_PORT=${BASH_REMATCH[1]}
      break
    fi
  done
  # The rest of the output goes on to the log. The copy reads the FIFO read-only and does
  # not inherit the shell's read-write end, so it ends when the server does.
  cat "$fifo" >> "$log" {fd}<&- &
  SERVER_LOG_PID=$!
  exec {fd}<&-
  rm -f "$fifo"
  if [ -z "$SERVER_PORT" ]; then
    echo "the server did not say it was listening within 20 s:" >&2
    cat "$log" >&2
    return 1
  fi
}
