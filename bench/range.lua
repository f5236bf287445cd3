-- wrk script for bench/static: each request asks for one 64 KiB range of the file, at a random
-- 64 KiB-aligned offset (Range: bytes=A-B with A a multiple of 64 KiB, B = A + 65535). The
-- seed is fixed, so every server gets the same sequence of ranges.
-- usage: wrk ... -s bench/range.lua URL -- FILE_SIZE [RANGE_SIZE]
local chunk, count

init = function(args)
  local size = tonumber(args[1])
  chunk = tonumber(args[2]) or 65536
  count = math.floor(size / chunk)
  math.randomseed(1)
end

request = function()
  local a = math.random(0, count - 1) * chunk
  return wrk.format(nil, nil, { Range = "bytes=" .. a .. "-" .. (a + chunk - 1) })
end
