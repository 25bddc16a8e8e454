-- Stores the sink's result for the waiting client (one round trip, atomic, constant work: the
-- DAG's per-node keys are deleted afterwards in bounded batches, see cleanup.rs).
-- (The prelude of scripts.rs defines RUNNING, SUCCEEDED and EVENTS_KEPT.)
--
-- KEYS[1]  dag:{id}:status   ARGV[1]  the encoded outcome pushed for the waiting client
-- KEYS[2]  dag:{id}:result   ARGV[2]  the keys' time to live (ms), for the keys this creates
-- KEYS[3]  dag:{id}:events
--
-- Returns 1 if this call ended the DAG, 0 if it had already ended or is unknown.
if redis.call('GET', KEYS[1]) ~= RUNNING then
  return 0
end
redis.call('SET', KEYS[1], SUCCEEDED, 'KEEPTTL')
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', EVENTS_KEPT, '*', 'event', 'succeeded')
redis.call('PEXPIRE', KEYS[3], ARGV[2], 'NX')
return 1
