-- Records a failure; the first outcome of a DAG wins (one round trip, atomic).
--
-- KEYS[1]  dag:{id}:status   ARGV[1]  the failing node's index
-- KEYS[2]  dag:{id}:errors   ARGV[2]  the error as JSON
-- KEYS[3]  dag:{id}:result   ARGV[3]  the encoded outcome pushed for the waiting client
-- KEYS[4]  dag:{id}:plan     ARGV[4]  number of nodes in the plan (-1: keep the intermediate state)
-- KEYS[5]  dag:{id}:events   ARGV[5]  the key prefix dag:{id}:
--                             ARGV[6]  the keys' time to live (ms), for the keys this creates
--
-- Returns 1 if this failure ended the DAG, 0 if it had already ended or is unknown.
local status = redis.call('GET', KEYS[1])
if not status then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[6], 'NX')
if status ~= 'running' then
  return 0
end
redis.call('SET', KEYS[1], 'failed', 'KEEPTTL')
redis.call('RPUSH', KEYS[3], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[6])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', 1000, '*', 'event', 'failed', 'node', ARGV[1])
redis.call('PEXPIRE', KEYS[5], ARGV[6], 'NX')
delete_intermediate(ARGV[5], tonumber(ARGV[4]), KEYS[4])
return 1
