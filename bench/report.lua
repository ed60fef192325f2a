-- Shared by the bench's wrk scripts: one machine-readable RESULT line.
-- Loaded with dofile(); `extra` is appended as is (already "key=value ...").
function bench_report(summary, latency, non2xx, extra)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "RESULT seconds=%.2f requests=%d requests_per_s=%.1f bytes_per_s=%.0f p50_ms=%.3f p99_ms=%.3f " ..
    "p999_ms=%.3f max_ms=%.3f socket_errors=%d non2xx=%d %s\n",
    seconds, summary.requests, summary.requests / seconds, summary.bytes / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    latency.max / 1000, e.connect + e.read + e.write + e.timeout, non2xx, extra or ""))
end
