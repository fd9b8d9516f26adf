-- wrk script: send pre-signed pushes from files written by bench/pushes.py.
-- Usage: wrk -t T -c C -d D -s bench/push.lua URL -- <prefix>
-- Thread t reads <prefix>.t (lines "<length>\n<raw request>"); when it has sent them all
-- it starts over (those repeats are duplicates to the hub; `wrapped` reports it).
-- done() prints one line "BENCH_JSON {...}" that bench/wrk.py reads.

local threads = {}
local count = 0

function setup(thread)
  thread:set("tid", count)
  count = count + 1
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1] .. "." .. tid, "rb"))
  reqs = {}
  while true do
    local line = f:read("*l")
    if not line then break end
    reqs[#reqs + 1] = f:read(tonumber(line))
  end
  f:close()
  n = #reqs
  i = 0
  sent = 0
  wrapped = 0
  statuses = {}
end

function request()
  i = i + 1
  if i > n then
    i = 1
    wrapped = 1
  end
  sent = sent + 1
  return reqs[i]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local per_status = {}
  local sent_total, wrapped_any = 0, 0
  for _, thread in ipairs(threads) do
    sent_total = sent_total + thread:get("sent")
    wrapped_any = math.max(wrapped_any, thread:get("wrapped"))
    for status, n in pairs(thread:get("statuses")) do
      per_status[status] = (per_status[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(per_status) do
    parts[#parts + 1] = string.format('"%d":%d', status, n)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us":%d,"requests":%d,"bytes":%d,"sent":%d,"wrapped":%s,' ..
    '"statuses":{%s},"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p99":%d,"max":%d}}\n',
    summary.duration, summary.requests, summary.bytes, sent_total,
    wrapped_any == 1 and "true" or "false", table.concat(parts, ","),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
