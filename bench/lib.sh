# Helpers the benchmark scripts share: source it from the repository root.

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT: until something accepts connections there (10 s at most; then the script
# stops, naming the port).
wait_port() {
  for _ in $(seq 200); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1).close()" \
      2>/dev/null && return 0
    sleep 0.05
  done
  echo "$(basename "$0"): nothing listens on port $1" >&2
  exit 1
}

# wait_http PORT: until a server there answers GET /plaintext, whatever the status (5 s at
# most; then the script stops, naming the port).
wait_http() {
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$1/plaintext" && return 0
    sleep 0.05
  done
  echo "$(basename "$0"): nothing answers on port $1" >&2
  exit 1
}

# median: the median of the numbers on standard input, one per line (empty lines ignored).
median() { { grep -v '^$' || true; } | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
