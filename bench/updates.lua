-- Update checks (POST /updates) from DEVICES distinct registered devices
-- (device k belongs to app k % APPS, as bench/seed.py seeded them), with a mix
-- of platforms, plugin versions, native versions, current bundles and
-- channels. The hello-world baseline gets the very same requests.
dofile(os.getenv("BENCH_DIR") .. "/report.lua")

local devices = tonumber(os.getenv("DEVICES") or "100000")
local apps = tonumber(os.getenv("APPS") or "10")
local plugins = { "5.10.2", "6.14.0", "7.35.1", "8.40.7", "8.51.14", "8.51.14", "8.51.14" }
local headers = { ["Content-Type"] = "application/json" }

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  non2xx, offered, up_to_date, blocked, failed = 0, 0, 0, 0, 0
end

local function platform_of(k)
  local slot = k % 20
  if slot < 12 then return "android" elseif slot < 19 then return "ios" else return "electron" end
end

function request()
  counter = counter + 1
  -- 7919 is prime and coprime with 10^n: the walk visits every device once per lap.
  local k = (thread_index * 50021 + counter * 7919) % devices
  local mix = k % 100
  local channel = ""
  if mix >= 95 then channel = "staging" elseif mix >= 80 then channel = "beta" end
  -- Most run a recent bundle, some an old one, some the native one; a few
  -- have a newer native build than the channel's bundles.
  local current = "1.0." .. (5 + k % 20)
  if mix % 10 == 3 then current = "builtin" end
  local native = (mix % 25 == 7) and "2.0.0" or "1.0.0"
  local body = string.format(
    '{"platform":"%s","device_id":"00000000-0000-4000-8000-%012d","app_id":"com.bench.app%d",' ..
    '"custom_id":"%s","version_build":"%s","version_code":"10","version_os":"%d","version_name":"%s",' ..
    '"plugin_version":"%s","is_emulator":%s,"is_prod":true,"install_source":"google_play",' ..
    '"defaultChannel":"%s"}',
    platform_of(k), k, k % apps, (k % 7 == 0) and ("user-" .. k) or "", native, 13 + k % 5, current,
    plugins[(k % #plugins) + 1], (mix == 42) and "true" or "false", channel)
  return wrk.format("POST", "/updates", headers, body)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  elseif body:find('"url"', 1, true) then
    offered = offered + 1
  elseif body:find('"up_to_date"', 1, true) then
    up_to_date = up_to_date + 1
  elseif body:find('"blocked"', 1, true) then
    blocked = blocked + 1
  else
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local totals = { non2xx = 0, offered = 0, up_to_date = 0, blocked = 0, failed = 0 }
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + thread:get(name)
    end
  end
  bench_report(summary, latency, totals.non2xx, string.format(
    "offered=%d up_to_date=%d blocked=%d failed=%d",
    totals.offered, totals.up_to_date, totals.blocked, totals.failed))
end
