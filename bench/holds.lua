-- wrk script for bench/holds.py. args: MODE RUN CODES_FILE
--   redeem: POST /v1/promocodes/{code}/redeem, a random code, a new customer each time;
--   pairs:  POST /v1/promocodes/{code}/holds for a new order, then, once it is answered,
--           POST /v1/promocode-holds/{id}/confirm for that hold.
-- wrk asks request() for a connection's next request when it is writable, with no word of
-- which connection that is: a hold's confirm is queued when its answer comes and sent as the
-- next request of whichever connection asks first (with 64 connections, no later than the
-- next answer's). Every hold answered is confirmed, except those answered as wrk stops.
-- Env: AUTH, the Authorization header's value. Prints one line "JSON {...}" (run with -t1).
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  mode, run = args[1], args[2]
  codes = {}
  for line in io.lines(args[3]) do table.insert(codes, line) end
  math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6))
  n = 0
  queue, head, tail = {}, 1, 0
  s200, s201, other, confirms = 0, 0, 0, 0
end

local headers = { ["Content-Type"] = "application/json", ["Authorization"] = os.getenv("AUTH") }
local no_body = { ["Authorization"] = os.getenv("AUTH") }

function request()
  if head <= tail then
    local id = queue[head]
    queue[head] = nil
    head = head + 1
    confirms = confirms + 1
    return wrk.format("POST", "/v1/promocode-holds/" .. id .. "/confirm", no_body, "")
  end
  n = n + 1
  local code = codes[math.random(#codes)]
  local who = '{"customer":"c-' .. run .. '-' .. n .. '@example.com","products":[]'
  if mode == "redeem" then
    return wrk.format("POST", "/v1/promocodes/" .. code .. "/redeem", headers, who .. "}")
  end
  local body = who .. ',"order":"o-' .. run .. '-' .. n .. '","ttl_seconds":600}'
  return wrk.format("POST", "/v1/promocodes/" .. code .. "/holds", headers, body)
end

function response(status, hdrs, body)
  if status == 201 then
    s201 = s201 + 1
    if mode == "pairs" then
      tail = tail + 1
      queue[tail] = string.match(body, '"id"%s*:%s*(%d+)')
    end
  elseif status == 200 then
    s200 = s200 + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local t = { s200 = 0, s201 = 0, other = 0 }
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + thread:get(k) end
  end
  local errors = summary.errors
  io.write(string.format(
    "JSON {\"seconds\":%.3f,\"requests\":%d,\"s200\":%d,\"s201\":%d,\"other\":%d," ..
    "\"socket_errors\":%d,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
    summary.duration / 1e6, summary.requests, t.s200, t.s201, t.other,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
