-- wrk script: each connection pauses 1 ms after every answer, so the offered load is fixed
-- (about connections x 1000 requests/s while latency is well under 1 ms) instead of "as
-- fast as the server goes". wrk's latency figures then describe a server that is not
-- saturated. usage: wrk ... -s bench/paced.lua URL
delay = function()
  return 1
end
