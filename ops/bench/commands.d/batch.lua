-- wrk script: POST /v1/resources:batch with 1,000 new storage accounts per request.
-- Args: <api key> <run id> [<bodies prepared per thread>]. Bodies are prepared in init(),
-- before wrk starts its clock, so that building 1,000-record JSON in Lua does not take CPU
-- from the server under test on a small machine; when they run out, bodies are built per
-- request.
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
end

local n = 0
local prepared = {}
local used = 0

local function body()
  local records = {}
  for i = 1, 1000 do
    n = n + 1
    local name = string.format("sb%s%dx%d", run, tid, n)
    records[i] = string.format(
      '{"id":"/subscriptions/00000000-0000-4000-8000-%012d/resourceGroups/rg-batch/providers/Microsoft.Storage/storageAccounts/%s",'
        .. '"name":"%s","type":"Microsoft.Storage/storageAccounts","location":"westeurope","kind":"StorageV2",'
        .. '"tags":{"env":"prod","owner":"bench","costCenter":"cc-%d"},'
        .. '"properties":{"supportsHttpsTrafficOnly":true,"minimumTlsVersion":"TLS1_2","allowBlobPublicAccess":false,'
        .. '"sku":{"name":"Standard_LRS","tier":"Standard"},"networkAcls":{"defaultAction":"Deny"}}}',
      tid, name, name, n % 97)
  end
  return '{"resources":[' .. table.concat(records, ",") .. ']}'
end

function init(args)
  wrk.headers["Authorization"] = "Bearer " .. args[1]
  wrk.headers["Content-Type"] = "application/json"
  run = args[2]
  for i = 1, tonumber(args[3] or "0") do
    prepared[i] = wrk.format("POST", "/v1/resources:batch", nil, body())
  end
end

function request()
  used = used + 1
  if prepared[used] then
    local r = prepared[used]
    prepared[used] = nil
    return r
  end
  return wrk.format("POST", "/v1/resources:batch", nil, body())
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT rps=%.2f p50=%.2f p95=%.2f p99=%.2f non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
