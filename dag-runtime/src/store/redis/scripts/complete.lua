-- Stores a node's output and marks it finished for each child, atomically (one round trip).
-- (The prelude of scripts.rs defines RUNNING and EVENTS_KEPT.)
--
-- KEYS[1]  dag:{id}:status       ARGV[1]  the node's output bytes
-- KEYS[2]  dag:{id}:out:<node>   ARGV[2]  the node index
-- KEYS[3]  dag:{id}:events       ARGV[3]  '1' to append a `done` event, '0' not to
--                                ARGV[4]  the worker (process) that ran the node, for the event
--                                ARGV[5]  the keys' time to live (ms): set on the keys this creates
--                                ARGV[6]  the node's task name for the event (`task[i]` for a
--                                         map element), or '' if unknown
-- KEYS[3 + j]  dag:{id}:done:<child j>     ARGV[7]      the claim of the calling run, or ''
--   for j = 1 .. number of children          ARGV[7 + j]  number of distinct parents of child j
--
-- Returns -1 if the DAG is not running (ended or unknown), else the positions j (1-based) of the
-- children that became ready through this call. SADD makes a repeated report of one parent count
-- once, and "SADD added it and the set is now full" is true for exactly one call per child.
--
-- That call claims the child for its run by adding the member '@<claim>' to the child's set
-- (never a node index, and added only once the set is full, so it never counts as a parent).
-- A repeated report with the same claim, the re-run of a run whose worker died before handing
-- the child on, gets the child again; any other repeated report does not.
if redis.call('GET', KEYS[1]) ~= RUNNING then
  return -1
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[5])
local claim = ARGV[7]
local ready = {}
for i = 4, #KEYS do
  local child = i - 3
  if redis.call('SADD', KEYS[i], ARGV[2]) == 1 then
    local parents = tonumber(ARGV[child + 7])
    local finished = 1
    if parents ~= 1 then
      finished = redis.call('SCARD', KEYS[i])
    end
    if finished == 1 then
      -- This call created the set: it expires like every key of the DAG.
      redis.call('PEXPIRE', KEYS[i], ARGV[5])
    end
    if finished == parents then
      if claim ~= '' then
        redis.call('SADD', KEYS[i], '@' .. claim)
      end
      ready[#ready + 1] = child
    end
  elseif claim ~= '' and redis.call('SISMEMBER', KEYS[i], '@' .. claim) == 1 then
    ready[#ready + 1] = child
  end
end
if ARGV[3] == '1' then
  -- The stream was created, with its expiry, when the DAG was submitted.
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', EVENTS_KEPT, '*', 'event', 'done', 'node', ARGV[2],
    'ready', #ready, 'worker', ARGV[4], 'task', ARGV[6])
end
return ready
