-- wrk script for the bench harness (bench/common.py:wrk): POST one pre-generated body per request.
-- BENCH_BODIES: a file with one JSON body per line; thread i of n sends lines i, i+n, i+2n, ...
-- so no body is sent twice. A thread that runs out stops (counted as "exhausted"): the harness
-- sizes the bodies so that this does not happen, and flags the row when it does.
-- BENCH_THREADS: wrk's -t; BENCH_PATH: the path; BENCH_TOKEN: the API key. done() prints one line: BENCHJSON {...}
-- with the requests, the status-code tally (response() counts every answer) and latencies.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  nthreads = tonumber(os.getenv("BENCH_THREADS"))
  bodies = {}
  local i = 0
  for line in io.lines(os.getenv("BENCH_BODIES")) do
    if i % nthreads == index then
      table.insert(bodies, line)
    end
    i = i + 1
  end
  position = 0
  statuses = {}
  exhausted = 0
  path = os.getenv("BENCH_PATH")
  headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Token " .. os.getenv("BENCH_TOKEN"),
  }
end

function request()
  position = position + 1
  if position > #bodies then
    -- out of bodies: stop this thread; the request still due is a harmless GET, not a repeat
    exhausted = 1
    wrk.thread:stop()
    return wrk.format("GET", "/bench/ping")
  end
  return wrk.format("POST", path, headers, bodies[position])
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local tally = {}
  local exhausted_threads = 0
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for code, n in pairs(s) do
      tally[code] = (tally[code] or 0) + n
    end
    exhausted_threads = exhausted_threads + thread:get("exhausted")
  end
  local parts = {}
  for code, n in pairs(tally) do
    table.insert(parts, string.format('"%s": %d', code, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %d, "seconds": %.3f, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"statuses": {%s}, "socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
    '"exhausted": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99), latency.max,
    table.concat(parts, ", "), e.connect, e.read, e.write, e.timeout, exhausted_threads))
end
