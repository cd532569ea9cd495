-- wrk script: GET requests cycling through the paths of a file, one per line (written by
-- `cortex-bench prepare`, or by ops/bench/queries for the fixed ones). Args: <api key>
-- <paths file> [<ms between requests per connection>] (the third throttles each connection
-- for the fixed-rate runs). Every thread starts at a different place in the file. The
-- request strings are built in init(), before wrk starts its clock.
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
end

local requests = {}
local i = 0
local gap = 0

function init(args)
  wrk.headers["Authorization"] = "Bearer " .. args[1]
  wrk.headers["Accept"] = "application/json"
  for path in io.lines(args[2]) do
    if path ~= "" then
      requests[#requests + 1] = wrk.format("GET", path)
    end
  end
  gap = tonumber(args[3] or "0")
  i = ((tid - 1) * 7919) % #requests
end

function delay()
  return gap
end

function request()
  i = i % #requests + 1
  return requests[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT rps=%.1f requests=%d p50=%.2f p95=%.2f p99=%.2f non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), summary.requests,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
