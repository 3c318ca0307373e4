-- wrk script for bench/run.
--
-- BENCH_TOKENS=FILE (one JWT a line) makes every request carry the next token from the file,
-- round-robin. Without it the request is static (bench/run passes one token with -H), which
-- keeps Lua out of wrk's hot path. Either way, done() prints one `BENCH {json}` line that
-- bench/run reads.

local tokens_file = os.getenv("BENCH_TOKENS")

if tokens_file and tokens_file ~= "" then
   local requests = {}
   local next_index = 0

   function init(args)
      for line in io.lines(tokens_file) do
         if #line > 0 then
            requests[#requests + 1] =
               wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. line })
         end
      end
      if #requests == 0 then
         error("no tokens in " .. tokens_file)
      end
   end

   function request()
      next_index = next_index % #requests + 1
      return requests[next_index]
   end
end

-- Only counts: bench/run takes latency from h2load (see run_wrk there).
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH {"requests": %d, "duration_us": %d, "errors_connect": %d, "errors_read": %d, '
         .. '"errors_write": %d, "errors_timeout": %d, "non_2xx_3xx": %d}\n',
      summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status))
end
