-- wrk script for bench/intake.sh: each thread reads its own file of pre-signed delete webhooks
-- (bench/make-bodies.py), one per request, so no request id repeats within a run; counts the 202s;
-- prints one JSON line with the figures.
--   wrk -t2 -c64 -d10s -s bench/intake.lua http://127.0.0.1:18080 -- <bodies-dir>
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  bodies = io.open(args[1] .. "/bodies-" .. id .. ".txt", "r")
  accepted, other, wrapped = 0, 0, 0
end

function request()
  local line = bodies:read("*l")
  if line == nil then
    wrapped = 1  -- ran out: ids repeat from here on (the script says so)
    bodies:seek("set", 0)
    line = bodies:read("*l")
  end
  local tab = line:find("\t", 1, true)
  return wrk.format("POST", "/v1/mineos/delete",
    { ["Content-Type"] = "application/json", ["X-Mine-Signature"] = line:sub(1, tab - 1) },
    line:sub(tab + 1))
end

function response(status, headers, body)
  if status == 202 then accepted = accepted + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local a, o, w = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted")
    o = o + t:get("other")
    w = math.max(w, t:get("wrapped"))
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"accepted":%d,' ..
    '"other_status":%d,"socket_errors":%d,"ids_repeated":%s}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, a, o,
    e.connect + e.read + e.write + e.timeout, w == 1 and "true" or "false"))
end
