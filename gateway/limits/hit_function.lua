-- The GCRA burst limit and daily quota, as a function the scripts share (hit.lua, and
-- the key check in gateway/access/verify_and_hit.lua). Needs now.lua before it.
-- hit(gcra_key, day_key, per_minute, per_day, now)
-- gcra_key    GCRA state: the theoretical arrival time (TAT), integer us since the epoch
-- day_key     day quota: hash {d = UTC day number, n = requests counted on that day}
-- per_minute  >= 1        per_day  -1 = no daily cap        now  us since the epoch
--
-- GCRA (generic cell rate algorithm). The limit is one request per emission interval
-- T = 60 s / per_minute, with a burst capacity of per_minute. The only state is the TAT:
-- the time at which the subject would be "caught up" if every request it was granted had
-- been spaced exactly T apart. Each granted request pushes the TAT forward by T (from now,
-- if the TAT is already in the past: idle time refills the burst, but only up to full). A
-- request is granted when its new TAT would lie at most tau = per_minute * T (= 60 s)
-- ahead of now, i.e. when at most per_minute intervals of work are "owed".
--
-- Why a window edge cannot double the burst: there are no windows. If k requests are
-- granted between t1 and tk, the TAT after them is at least t1 + k*T (it started at or
-- after t1 and grew by T per grant), and the grant at tk required TAT - tk <= tau, so
-- k <= per_minute + (tk - t1) / T. A full burst at 59.9 s followed by another at 60.1 s
-- gets nothing at 60.1 s: only 0.2 s of refill has happened, whereas a fixed-window
-- counter would reset at 60 s and grant a second full burst.
--
-- T is rounded down to whole microseconds, so tau = per_minute * T is exact and a fresh
-- subject gets exactly per_minute at once; the long-run rate is faster than exact by less
-- than one microsecond per request.
--
-- The day quota is a counter tagged with its UTC day number: a counter from an earlier day
-- reads as 0 (the key's TTL runs to the next 00:00 UTC as well, so it is also dropped).
-- Nothing is written unless both limits grant the request, so a refusal consumes nothing.
--
-- Returns {allowed 0/1, refused by 'minute' | 'day' | '', burst remaining (floor),
--          day remaining (-1 = no cap), s until the burst is full again (ceil),
--          s until a retry can succeed (ceil, 0 when allowed), s until 00:00 UTC (ceil)}
local function hit(gcra_key, day_key, per_minute, per_day, now)
  local interval = math.max(1, math.floor(60000000 / per_minute))
  local tau = per_minute * interval
  local tat = tonumber(redis.call('GET', gcra_key)) or now
  if tat < now then tat = now end
  local new_tat = tat + interval
  local minute_ok = new_tat - now <= tau

  local day = math.floor(now / DAY_US)
  local day_end = (day + 1) * DAY_US
  local used = 0
  if per_day >= 0 then
    local stored = redis.call('HMGET', day_key, 'd', 'n')
    if tonumber(stored[1]) == day then used = tonumber(stored[2]) or 0 end
  end
  local day_ok = per_day < 0 or used < per_day

  local allowed = minute_ok and day_ok
  if allowed then
    tat = new_tat
    -- Once the TAT has passed the state equals a fresh one, so the key can expire then.
    redis.call('SET', gcra_key, int(tat), 'PX', int(math.ceil((tat - now) / 1000)))
    if per_day >= 0 then
      used = used + 1
      redis.call('HSET', day_key, 'd', int(day), 'n', int(used))
      redis.call('PEXPIRE', day_key, int(math.ceil((day_end - now) / 1000)))
    end
  end

  local limit = ''
  if not day_ok then limit = 'day' elseif not minute_ok then limit = 'minute' end
  local remaining_minute = math.max(0, math.floor((now + tau - tat) / interval))
  local remaining_day = -1
  if per_day >= 0 then remaining_day = math.max(0, per_day - used) end
  local reset_s = math.ceil((tat - now) / 1000000)
  local day_reset_s = math.ceil((day_end - now) / 1000000)
  local retry_s = 0
  if not minute_ok then retry_s = math.ceil((new_tat - tau - now) / 1000000) end
  if not day_ok then retry_s = math.max(retry_s, day_reset_s) end
  return {allowed and 1 or 0, limit, remaining_minute, remaining_day, reset_s, retry_s,
          day_reset_s}
end
