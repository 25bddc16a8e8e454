-- Records a failure; the first outcome of a DAG wins (one round trip, atomic, constant work:
-- the DAG's per-node keys are deleted afterwards in bounded batches, see cleanup.rs).
-- (The prelude of scripts.rs defines RUNNING, FAILED and EVENTS_KEPT.)
--
-- KEYS[1]  dag:{id}:status   ARGV[1]  the failing node's index
-- KEYS[2]  dag:{id}:errors   ARGV[2]  the error as JSON
-- KEYS[3]  dag:{id}:result   ARGV[3]  the encoded outcome pushed for the waiting client
-- KEYS[4]  dag:{id}:events   ARGV[4]  the keys' time to live (ms), for the keys this creates
--
-- Needs nothing but the DAG's id: a DAG whose plan cannot be read can still fail.
-- Returns 1 if this failure ended the DAG, 0 if it had already ended or is unknown.
local status = redis.call('GET', KEYS[1])
if not status then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4], 'NX')
if status ~= RUNNING then
  return 0
end
redis.call('SET', KEYS[1], FAILED, 'KEEPTTL')
redis.call('RPUSH', KEYS[3], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', EVENTS_KEPT, '*', 'event', 'failed', 'node', ARGV[1])
redis.call('PEXPIRE', KEYS[4], ARGV[4], 'NX')
return 1
