-- wrk script of bench/append_http.py and bench/batch.py: POST note_added events to open
-- migrations, picked at random among them (no If-Match).
--
--   wrk -s bench/events.lua URL -- IDS_FILE TOKEN MODE SIZE [PREFER]
--
-- MODE "single": one event per request to /v1/migrations/{id}/events
--      "array":  an array of SIZE events per request to /v1/migrations/{id}/events (atomic)
--      "across": SIZE items per request to /v1/events:batch, each on a random migration
-- PREFER, when given and not empty, is sent as the Prefer header (e.g. "return=minimal").
-- The last line written is "RESULT {json}": requests, duration, statuses and latencies.

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("number", counter)
  table.insert(threads, thread)
end

local ids, mode, size, headers
local note = '{"type":"note_added","text":"load"}'

function init(args)
  ids = {}
  for line in io.lines(args[1]) do
    if #line > 0 then table.insert(ids, line) end
  end
  mode = args[3]
  size = tonumber(args[4])
  headers = {["Authorization"] = "Bearer " .. args[2], ["Content-Type"] = "application/json"}
  if args[5] and #args[5] > 0 then headers["Prefer"] = args[5] end
  statuses = {}
  math.randomseed(number * 7919)
end

local function pick()
  return ids[math.random(#ids)]
end

function request()
  if mode == "across" then
    local items = {}
    for i = 1, size do
      items[i] = '{"migration_id":"' .. pick() .. '","event":' .. note .. '}'
    end
    return wrk.format("POST", "/v1/events:batch", headers, "[" .. table.concat(items, ",") .. "]")
  end
  local body = note
  if mode == "array" then
    local events = {}
    for i = 1, size do events[i] = note end
    body = "[" .. table.concat(events, ",") .. "]"
  end
  return wrk.format("POST", "/v1/migrations/" .. pick() .. "/events", headers, body)
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(total) do
    table.insert(parts, string.format('"%s":%d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"statuses":{%s},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, summary.duration, table.concat(parts, ","),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, latency.max / 1000))
end
