-- wrk script for bench/stats-ingest.sh: POST /stats batches of $BATCH events,
-- each request from another device (a pool of distinct devices per thread),
-- like many plugins flushing their queues. Counts acknowledged requests.

local batch = tonumber(os.getenv("BATCH") or "20")
local app_id = os.getenv("APP_ID") or "com.bench.app"
local devices_per_thread = tonumber(os.getenv("DEVICES_PER_THREAD") or "400")
local actions = { "app_moved_to_foreground", "app_moved_to_background", "download_complete",
                  "set", "update_fail", "app_launch_ready", "ping", "download_fail" }

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  ok = 0
  refused = 0
  other = 0
  bodies = {}
  counter = 0
  local now_ms = os.time() * 1000
  for d = 1, devices_per_thread do
    local device = string.format("%08x-0000-4000-8000-%012d", thread_index + 1, d)
    local events = {}
    for e = 1, batch do
      local action = actions[((d + e) % #actions) + 1]
      events[e] = string.format(
        '{"platform":"android","device_id":"%s","app_id":"%s","custom_id":"","version_build":"1.0.0",' ..
        '"version_code":"10","version_os":"14","version_name":"1.%d.0","old_version_name":"",' ..
        '"plugin_version":"8.51.14","is_emulator":false,"is_prod":true,"install_source":"google_play",' ..
        '"defaultChannel":"","action":"%s","timestamp":%d}',
        device, app_id, d % 5, action, now_ms - (batch - e) * 1000)
    end
    bodies[d] = "[" .. table.concat(events, ",") .. "]"
  end
end

function request()
  counter = counter + 1
  local body = bodies[(counter % #bodies) + 1]
  return wrk.format("POST", "/stats", { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  elseif status == 429 then
    refused = refused + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local acked, refused_total, other_total = 0, 0, 0
  for _, thread in ipairs(threads) do
    acked = acked + thread:get("ok")
    refused_total = refused_total + thread:get("refused")
    other_total = other_total + thread:get("other")
  end
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT batch=%d seconds=%.1f requests_ok=%d refused_429=%d other_status=%d socket_errors=%d " ..
    "events_acked=%d events_per_s=%.0f requests_per_s=%.0f p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n",
    batch, seconds, acked, refused_total, other_total, e.connect + e.read + e.write + e.timeout,
    acked * batch, acked * batch / seconds, acked / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
