# Opens N connections to a loopback Updraft, one GET /healthz each, keeps them
# idle and prints the server RSS growth; then times one more client.
# Usage: python3 bench/idle_connections.py HOST PORT SERVER_PID N (loopback only).
import socket, sys, time
host, port, pid, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"): return int(line.split()[1])
base = rss(); socks = []; answered = 0; refused = 0
for i in range(n):
    try:
        s = socket.create_connection((host, port), timeout=3)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    except OSError:
        refused += 1
for s in socks:
    s.settimeout(0.05)
    try:
        if s.recv(4096): answered += 1
    except OSError: pass
time.sleep(1)
after = rss()
print(f"{n} sockets: {len(socks)} connected, {answered} answered and held idle, {refused} not connected; RSS {base} kB -> {after} kB = {(after-base)/max(answered,1)*1000/1024:.1f} MB per 1000 held")
t = socket.create_connection((host, port), timeout=30); t.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
t0=time.time(); r=t.recv(100); print(f"another client: {r[:15]!r} after {time.time()-t0:.1f} s")
