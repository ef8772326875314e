-- wrk script: each request carries the next Cookie header value from a file
-- (one per line), round-robin over all of them, for the many-sessions
-- scenario; with BENCH_ONCE=1 each value is used only once (remember-me
-- cookies rotate, and a reused old value is theft) and the thread stops when
-- the list runs out, which done() reports as "exhausted".
--
--   wrk -t1 -c32 -d10s -s bench/wrk/rr.lua URL -- COOKIE_FILE

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local reqs = {}
local n, i = 0, 0
local once = os.getenv("BENCH_ONCE") == "1"
exhausted = 0

function init(args)
   local file = args[1]
   if file then
      for line in io.lines(file) do
         if line ~= "" then
            n = n + 1
            reqs[n] = wrk.format(nil, nil, { ["Cookie"] = line })
         end
      end
   end
   if n == 0 then
      n = 1
      reqs[1] = wrk.format()
   end
end

function request()
   i = i + 1
   if i > n then
      if once then
         exhausted = 1
         wrk.thread:stop()
      end
      i = 1
   end
   return reqs[i]
end
