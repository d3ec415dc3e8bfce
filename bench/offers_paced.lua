-- wrk script: bench/offers.lua, each connection pausing a random 0..2*PACE_MS ms between its
-- requests, so that 64 connections offer a set rate instead of as many requests as the
-- server can answer (latency is then measured at that load, not at saturation).
-- args: as offers.lua, then PACE_MS.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "offers.lua")

local base_init = init
function init(args)
  base_init(args)
  pace = tonumber(args[5])
end

function delay()
  return math.random(0, 2 * pace)
end
