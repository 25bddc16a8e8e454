-- Marks a node finished for each child and stores its output, atomically (one round trip);
-- with task clustering the output may stay in the worker, with delayed I/O the node may hold
-- (see engine/locality.rs). (The prelude of scripts.rs defines RUNNING and EVENTS_KEPT.)
--
-- KEYS[1]  dag:{id}:status       ARGV[1]  the node's output bytes ('' with rule 'n')
-- KEYS[2]  dag:{id}:out:<node>   ARGV[2]  the node index
-- KEYS[3]  dag:{id}:events       ARGV[3]  '1' to append a `done` event, '0' not to
-- KEYS[4]  dag:{id}:done         ARGV[4]  the worker (process) that ran the node, for the event
--                                ARGV[5]  the keys' time to live (ms): set on the keys this creates
--                                ARGV[6]  the node's task name for the event (`task[i]` for a
--                                         map element), or '' if unknown
--                                ARGV[7]  the claim of the calling run, or ''
--                                ARGV[8]  'a': store the output and mark every child;
--                                         'n' (task clustering): the output stays in the worker;
--                                         mark only the children that become ready through
--                                         this call (the caller runs them, output in memory)
--                                ARGV[9]  with 'n', delayed I/O: the output's size in bytes if
--                                         the node would rather hold than store, or ''; with
--                                         'a', non-empty if the node held: its holds end
--   for j = 1 .. number of children:
--                                ARGV[8 + 2j]  child j's node index
--                                ARGV[9 + 2j]  number of distinct parents of child j
--
-- Returns -1 if the DAG is not running (ended or unknown); -2 if the node holds (nothing was
-- marked or stored); else the positions j (1-based) of the children that became ready through
-- this call. With 'n', the other children are left unmarked: the caller calls again for them
-- with 'a' and the output, so an output is always stored before a child that needs it can
-- become ready elsewhere.
--
-- The hash dag:{id}:done (created, with its expiry, when the DAG was submitted) records, per
-- child c, which parents finished, so that a repeated report of one parent counts once:
--
--   c      a child with one parent: the claim of the run that made it ready (HSETNX: set by
--          exactly one call); a child with several: how many distinct parents finished
--   c<p    parent p of a child with several parents finished (HSETNX: counted by one call)
--   c@     `<claim> <p>`: the run that made a child with several parents ready, and its
--          parent p whose completion did (only that parent's output may be missing from the
--          store: a kept output)
--   c~     `<node>:<size>`: the parent that holds its output for c (delayed I/O)
--
-- The call that makes a child ready claims it for its run (the claim is the stream entry id of
-- a worker process's run, '' in process). A repeated report by the same parent with the same
-- claim, the re-run of a run whose worker died before handing the child on, gets the child
-- again; any other repeated report does not (the re-run reaches that parent again, since every
-- node a run ran was made ready by a node it ran before). One hash per DAG rather than a set per child: no key to create and
-- expire per child, and fewer commands per report.
--
-- Holding: a node with a large output may hold instead of storing it when no child would become
-- ready through it, so that the last missing parent of a child is the one with the largest
-- output, which then runs the child with that output in memory. A child has at most one holder.
-- A node outranks a holder if its output is larger, or as large and its index lower; a node
-- that is outranked does not hold (it stores and marks at once), a holder that is outranked
-- learns it at its next call and stores and marks then. So of the large parents of one child
-- only the highest-ranked waits, and only for parents still running: none waits for another.
if redis.call('GET', KEYS[1]) ~= RUNNING then
  return -1
end
local done, node, claim, rule = KEYS[4], ARGV[2], ARGV[7], ARGV[8]
local children = (#ARGV - 9) / 2

-- Marks `node` finished for child j if it was not; returns whether the child became ready
-- through this call (or was claimed by this call's run before).
local function mark(j)
  local child, parents = ARGV[8 + 2 * j], ARGV[9 + 2 * j]
  local claimed
  if parents == '1' then
    if redis.call('HSETNX', done, child, claim) == 1 then
      return true
    end
    claimed = child
  elseif redis.call('HSETNX', done, child .. '<' .. node, 1) == 1 then
    if redis.call('HINCRBY', done, child, 1) == tonumber(parents) then
      if claim ~= '' then
        redis.call('HSET', done, child .. '@', claim .. ' ' .. node)
      end
      return true
    end
    return false
  else
    return claim ~= '' and redis.call('HGET', done, child .. '@') == claim .. ' ' .. node
  end
  return claim ~= '' and redis.call('HGET', done, claimed) == claim
end

-- Whether marking child j would make it ready (or give it back to this call's run).
local function would_ready(j)
  local child, parents = ARGV[8 + 2 * j], ARGV[9 + 2 * j]
  if parents == '1' then
    local value = redis.call('HGET', done, child)
    return not value or (claim ~= '' and value == claim)
  end
  if redis.call('HEXISTS', done, child .. '<' .. node) == 1 then
    return claim ~= '' and redis.call('HGET', done, child .. '@') == claim .. ' ' .. node
  end
  return (tonumber(redis.call('HGET', done, child)) or 0) == tonumber(parents) - 1
end

local function event(ready)
  if ARGV[3] == '1' then
    -- The stream was created, with its expiry, when the DAG was submitted.
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', EVENTS_KEPT, '*', 'event', 'done', 'node', node,
      'ready', ready, 'worker', ARGV[4], 'task', ARGV[6])
  end
end

-- Ends this node's holds on its children.
local function release()
  for j = 1, children do
    local field = ARGV[8 + 2 * j] .. '~'
    local holder = redis.call('HGET', done, field)
    if holder and string.match(holder, '^(%d+):') == node then
      redis.call('HDEL', done, field)
    end
  end
end

local ready = {}
if rule == 'a' then
  if ARGV[9] ~= '' then
    release() -- this node held before
  end
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[5])
  for j = 1, children do
    if mark(j) then
      ready[#ready + 1] = j
    end
  end
  event(#ready)
  return ready
end

local readying = {}
for j = 1, children do
  if would_ready(j) then
    readying[#readying + 1] = j
  end
end
local mine = node .. ':' .. ARGV[9]
if ARGV[9] ~= '' and #readying == 0 and children > 0 then
  local size = tonumber(ARGV[9])
  local outranked = false
  for j = 1, children do
    local holder = redis.call('HGET', done, ARGV[8 + 2 * j] .. '~')
    local n, s = string.match(holder or '', '^(%d+):(%d+)$')
    if n and n ~= node then
      if tonumber(s) > size or (tonumber(s) == size and tonumber(n) < tonumber(node)) then
        outranked = true
        break
      end
    end
  end
  if not outranked then
    for j = 1, children do
      redis.call('HSET', done, ARGV[8 + 2 * j] .. '~', mine)
    end
    return -2
  end
end
release()
for _, j in ipairs(readying) do
  if mark(j) then
    ready[#ready + 1] = j
  end
end
if #ready == children then
  event(#ready)
end
return ready
