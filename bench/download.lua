-- Concurrent downloads of one stored bundle zip (GET DL_PATH). No response()
-- callback: wrk would copy every 20 MB body into Lua. wrk counts statuses
-- of 400 and above in summary.errors.status.
dofile(os.getenv("BENCH_DIR") .. "/report.lua")

wrk.method = "GET"
wrk.path = os.getenv("DL_PATH") or "/"

function done(summary, latency, requests)
  bench_report(summary, latency, summary.errors.status,
    string.format("mbytes_per_s=%.1f", summary.bytes / (summary.duration / 1e6) / 1e6))
end
