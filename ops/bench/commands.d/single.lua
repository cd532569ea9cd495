-- wrk script: one new storage account per request (POST /v1/resources), unique per thread
-- and run. Args: <api key> <run id> [<ms between requests per connection>] (the third
-- throttles each connection for the fixed-rate latency run).
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

local key, run, gap
local n = 0

function init(args)
  key, run, gap = args[1], args[2], tonumber(args[3] or "0")
  wrk.headers["Authorization"] = "Bearer " .. key
  wrk.headers["Content-Type"] = "application/json"
end

function delay()
  return gap
end

function request()
  n = n + 1
  local name = string.format("st%s%dx%d", run, tid, n)
  local body = string.format(
    '{"id":"/subscriptions/00000000-0000-4000-8000-%012d/resourceGroups/rg-bench/providers/Microsoft.Storage/storageAccounts/%s",'
      .. '"name":"%s","type":"Microsoft.Storage/storageAccounts","location":"westeurope","kind":"StorageV2",'
      .. '"tags":{"env":"prod","owner":"bench","costCenter":"cc-%d"},'
      .. '"properties":{"supportsHttpsTrafficOnly":true,"minimumTlsVersion":"TLS1_2","allowBlobPublicAccess":false,'
      .. '"sku":{"name":"Standard_LRS","tier":"Standard"},"networkAcls":{"defaultAction":"Deny"}}}',
    tid, name, name, n % 97)
  return wrk.format("POST", "/v1/resources", nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT rps=%.1f p50=%.2f p95=%.2f p99=%.2f non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
