-- Stores a node's output and marks it finished for each child, atomically (one round trip).
-- (The prelude of scripts.rs defines RUNNING and EVENTS_KEPT.)
--
-- KEYS[1]  dag:{id}:status       ARGV[1]  the node's output bytes
-- KEYS[2]  dag:{id}:out:<node>   ARGV[2]  the node index
-- KEYS[3]  dag:{id}:events       ARGV[3]  '1' to append a `done` event, '0' not to
-- KEYS[4]  dag:{id}:done         ARGV[4]  the worker (process) that ran the node, for the event
--                                ARGV[5]  the keys' time to live (ms): set on the keys this creates
--                                ARGV[6]  the node's task name for the event (`task[i]` for a
--                                         map element), or '' if unknown
--                                ARGV[7]  the claim of the calling run, or ''
--   for j = 1 .. number of children:
--                                ARGV[6 + 2j]  child j's node index
--                                ARGV[7 + 2j]  number of distinct parents of child j
--
-- Returns -1 if the DAG is not running (ended or unknown), else the positions j (1-based) of the
-- children that became ready through this call.
--
-- The hash dag:{id}:done (created, with its expiry, when the DAG was submitted) records, per
-- child c, which parents finished, so that a repeated report of one parent counts once:
--
--   c      a child with one parent: the claim of the run that made it ready (HSETNX: set by
--          exactly one call); a child with several: how many distinct parents finished
--   c<p    parent p of a child with several parents finished (HSETNX: counted by one call)
--   c@     the claim of the run that made a child with several parents ready
--
-- The call that makes a child ready claims it for its run (the claim is the stream entry id of
-- a worker process's run, '' in process). A repeated report with the same claim, the re-run of
-- a run whose worker died before handing the child on, gets the child again; any other
-- repeated report does not. One hash per DAG rather than a set per child: no key to create and
-- expire per child, and fewer commands per report.
if redis.call('GET', KEYS[1]) ~= RUNNING then
  return -1
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[5])
local done, node, claim = KEYS[4], ARGV[2], ARGV[7]
local ready = {}
for j = 1, (#ARGV - 7) / 2 do
  local child, parents = ARGV[6 + 2 * j], ARGV[7 + 2 * j]
  local claimed
  if parents == '1' then
    if redis.call('HSETNX', done, child, claim) == 1 then
      ready[#ready + 1] = j
    else
      claimed = child
    end
  elseif redis.call('HSETNX', done, child .. '<' .. node, 1) == 1 then
    if redis.call('HINCRBY', done, child, 1) == tonumber(parents) then
      if claim ~= '' then
        redis.call('HSET', done, child .. '@', claim)
      end
      ready[#ready + 1] = j
    end
  else
    claimed = child .. '@'
  end
  if claimed and claim ~= '' and redis.call('HGET', done, claimed) == claim then
    ready[#ready + 1] = j
  end
end
if ARGV[3] == '1' then
  -- The stream was created, with its expiry, when the DAG was submitted.
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', EVENTS_KEPT, '*', 'event', 'done', 'node', node,
    'ready', #ready, 'worker', ARGV[4], 'task', ARGV[6])
end
return ready
