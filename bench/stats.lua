-- Stats ingest: POST /stats batches of BATCH events, each batch from one
-- registered device (device k of app k % APPS), as a plugin flushing its
-- queue does. Each event carries the time its batch is sent (whole seconds
-- from wrk's clock, never before START_MS, plus its place in the batch), as
-- a device's clock would, so bench/run.sh can count exactly this run's stored
-- events. Counts acknowledged batches.
dofile(os.getenv("BENCH_DIR") .. "/report.lua")

local batch = tonumber(os.getenv("BATCH") or "20")
local devices = tonumber(os.getenv("DEVICES") or "100000")
local apps = tonumber(os.getenv("APPS") or "10")
local start_ms = tonumber(os.getenv("START_MS") or "0")
local bodies_per_thread = tonumber(os.getenv("BODIES_PER_THREAD") or "400")
local actions = { "app_moved_to_foreground", "app_moved_to_background", "download_complete",
                  "set", "update_fail", "app_launch_ready", "ping", "download_fail" }
local headers = { ["Content-Type"] = "application/json" }

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  ok, refused, client_4xx, server_5xx = 0, 0, 0, 0
  bodies = {}
  counter = 0
  for d = 1, bodies_per_thread do
    local k = (thread_index * 100003 + d * 7919) % devices
    local platform = (k % 20 < 12) and "android" or "ios"
    local events = {}
    for e = 1, batch do
      events[e] = string.format(
        '{"platform":"%s","device_id":"00000000-0000-4000-8000-%012d","app_id":"com.bench.app%d",' ..
        '"custom_id":"","version_build":"1.0.0","version_code":"10","version_os":"14",' ..
        '"version_name":"1.0.%d","old_version_name":"1.0.5","plugin_version":"8.51.14",' ..
        '"is_emulator":false,"is_prod":true,"install_source":"google_play","defaultChannel":"",' ..
        '"action":"%s","timestamp":',
        platform, k, k % apps, 10 + k % 11, actions[((d + e) % #actions) + 1])
    end
    bodies[d] = events
  end
end

function request()
  counter = counter + 1
  local events = bodies[(counter % #bodies) + 1]
  local sent_ms = math.max(start_ms, os.time() * 1000)
  local parts = {}
  for e = 1, #events do
    parts[e] = events[e] .. (sent_ms + e) .. "}"
  end
  return wrk.format("POST", "/stats", headers, "[" .. table.concat(parts, ",") .. "]")
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  elseif status == 429 then
    refused = refused + 1
  elseif status >= 500 then
    server_5xx = server_5xx + 1
  else
    client_4xx = client_4xx + 1
  end
end

function done(summary, latency, requests)
  local acked, refused_total, client_total, server_total = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    acked = acked + thread:get("ok")
    refused_total = refused_total + thread:get("refused")
    client_total = client_total + thread:get("client_4xx")
    server_total = server_total + thread:get("server_5xx")
  end
  local seconds = summary.duration / 1e6
  bench_report(summary, latency, refused_total + client_total + server_total, string.format(
    "batch=%d requests_ok=%d refused_429=%d other_4xx=%d status_5xx=%d events_acked=%d events_per_s=%.0f",
    batch, acked, refused_total, client_total, server_total, acked * batch, acked * batch / seconds))
end
