-- wrk script for bench/available_offers.py. args: MODE RUN PLAYERS OFFER_IDS_FILE
--   available: GET /available-offers, a random player of PLAYERS, a random country
--   claims:    PUT /offers/claim, a new transaction id per request, every 10th a replay (409)
--   impressions: PUT /offers/:id/impressions, a new impression id, every 10th a replay (200)
-- Prints one line "JSON {...}": req/s, p50, p99, counts by status, replays sent.
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

local countries = {"BR","US","FR","DE","JP","IN","MX","CA","GB","IT","ES","AR","CL","PT","NL","SE","NO","PL","KR","AU"}

function init(args)
  mode, run, players = args[1], args[2], tonumber(args[3])
  offers = {}
  for line in io.lines(args[4]) do table.insert(offers, line) end
  math.randomseed(os.time() * 1000 + tid * 7919)
  n, last = 0, nil
  s200, s409, s4xx, s5xx, other, replays = 0, 0, 0, 0, 0, 0
end

local json = { ["Content-Type"] = "application/json" }

function request()
  n = n + 1
  local player = "p" .. math.random(1, players)
  if mode == "available" then
    local path = "/available-offers?game-id=bench&player-id=" .. player .. "&country=" .. countries[math.random(#countries)]
    return wrk.format("GET", path)
  end
  local replay = (n % 10 == 0) and last ~= nil
  local key = replay and last or string.format("%s%04x%012x", run, tid, n)
  if replay then replays = replays + 1 else last = key end
  local offer = offers[math.random(#offers)]
  if mode == "claims" then
    local body = '{"gameId":"bench","playerId":"' .. player .. '","timestamp":1700000000,"transactionId":"' .. key .. '","id":"' .. offer .. '"}'
    return wrk.format("PUT", "/offers/claim", json, body)
  end
  local uuid = string.format("%s-%04x-4000-8000-%012x", key:sub(1, 8), tid, replay and (n - 1) or n)
  local body = '{"gameId":"bench","playerId":"' .. player .. '","impressionId":"' .. uuid .. '"}'
  return wrk.format("PUT", "/offers/" .. offer .. "/impressions", json, body)
end

function response(status, headers, body)
  if status == 200 then s200 = s200 + 1
  elseif status == 409 then s409 = s409 + 1
  elseif status >= 500 then s5xx = s5xx + 1
  elseif status >= 400 then s4xx = s4xx + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local t = {s200 = 0, s409 = 0, s4xx = 0, s5xx = 0, other = 0, replays = 0}
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + thread:get(k) end
  end
  io.write(string.format("JSON {\"rps\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"n\":%d,\"s200\":%d,\"s409\":%d,\"s4xx\":%d,\"s5xx\":%d,\"other\":%d,\"replays\":%d,\"sockerr\":%d}\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, t.s200, t.s409, t.s4xx, t.s5xx, t.other, t.replays,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
