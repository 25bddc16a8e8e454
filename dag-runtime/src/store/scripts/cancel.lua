-- Cancels a DAG whose client gave up, and removes all of it: nobody will wait for its outcome.
-- (cleanup.lua is prepended; one round trip, atomic.)
--
-- KEYS[1]  dag:{id}:status   ARGV[1]  number of nodes in the plan
-- KEYS[2]  dag:{id}:errors   ARGV[2]  the key prefix dag:{id}:
-- KEYS[3]  dag:{id}:result   ARGV[3]  the DAG id (member of `dags`)
-- KEYS[4]  dag:{id}:plan
-- KEYS[5]  dag:{id}:events
-- KEYS[6]  dags
--
-- Whatever the DAG's status, every key of it is removed, the status first: a worker's next
-- step (complete/fail/finish check the status inside their script, fetch_outputs reads it with
-- the inputs) sees the DAG as ended, so no key of it is written again.
-- Returns 1 if this call ended a running DAG, 0 if it had already ended or is unknown.
local cancelled = 0
if redis.call('GET', KEYS[1]) == 'running' then
  cancelled = 1
end
delete_intermediate(ARGV[2], tonumber(ARGV[1]), KEYS[4])
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[5])
redis.call('ZREM', KEYS[6], ARGV[3])
return cancelled
