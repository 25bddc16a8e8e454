-- Cancels a DAG whose client gave up (one round trip, atomic, constant work: the DAG's
-- per-node keys are deleted afterwards in bounded batches, see cleanup.rs).
-- (The prelude of scripts.rs defines RUNNING.)
--
-- KEYS[1]  dag:{id}:status   ARGV[1]  the DAG id (member of `dags`)
-- KEYS[2]  dag:{id}:errors
-- KEYS[3]  dag:{id}:result
-- KEYS[4]  dag:{id}:plan
-- KEYS[5]  dag:{id}:events
-- KEYS[6]  dags (on one server; on a Redis Cluster it is in another slot, so it is left out
--          and the caller removes the DAG from it with a command of its own)
--
-- Whatever the DAG's status, its keys are removed, the status first: a worker's next step
-- (complete/fail/finish check the status inside their script, fetch_outputs reads it with the
-- inputs) sees the DAG as ended, so no key of it is written again.
-- Returns 1 if this call ended a running DAG, 0 if it had already ended or is unknown.
local cancelled = 0
if redis.call('GET', KEYS[1]) == RUNNING then
  cancelled = 1
end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
if KEYS[6] then
  redis.call('ZREM', KEYS[6], ARGV[1])
end
return cancelled
