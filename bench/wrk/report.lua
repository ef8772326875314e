-- wrk script: prints one machine-readable line at the end of a run
-- ("BENCHJSON {...}", latencies in microseconds) for bench/bench.py.
-- Used alone for static requests (the session check with one cookie given
-- by -H), and loaded by rr.lua and login.lua.
--
-- BENCH_METHOD / BENCH_BODY / BENCH_CONTENT_TYPE (environment) turn the
-- request into e.g. a JSON POST.

local method = os.getenv("BENCH_METHOD")
if method and method ~= "" then
   wrk.method = method
end
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
   wrk.body = body
   wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/json"
end

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function done(summary, latency, requests)
   local exhausted = 0
   for _, t in ipairs(threads) do
      exhausted = exhausted + (tonumber(t:get("exhausted")) or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d,' ..
      '"lat_mean_us":%.1f,"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_p999_us":%d,"lat_max_us":%d,' ..
      '"exhausted":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, exhausted))
end
