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
  # sed copies the server's lines to the log and quits after the one that says where it
  # listens (-u: it reads no further than that line); timeout bounds the wait, and a
  # server that never says it is told below from the missing port.
  timeout 20 sed -u -n -e p -e '/Release listening on http:/q' <&"$fd" >> "$log" || true
  SERVER_PORT=$(sed -n -E 's|.*Release listening on http://[^[:space:]]*:([0-9]+).*|\1|p' "$log" | tail -n1)
  # The rest of the output goes on to the log. The copy reads the FIFO read-only and does
  # not inherit the shell's read-write end, so it ends when the server does.
  # It is opened here, before the FIFO's name is removed (the server holds the writing end,
  # so the open does not wait).
  local rd
  exec {rd}<"$fifo"
  cat <&"$rd" >> "$log" {fd}<&- {rd}<&- &
  SERVER_LOG_PID=$!
  exec {fd}<&- {rd}<&-
  rm -f "$fifo"
  if [ -z "$SERVER_PORT" ]; then
    echo "the server did not say it was listening within 20 s:" >&2
    cat "$log" >&2
    return 1
  fi
}
