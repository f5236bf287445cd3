-- wrk script: send `depth` requests at once on each connection (TechEmpower's pipelining).
-- usage: wrk ... -s bench/pipeline.lua URL -- 16
init = function(args)
  local depth = tonumber(args[1]) or 1
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format()
  end
  req = table.concat(r)
end

request = function()
  return req
end
