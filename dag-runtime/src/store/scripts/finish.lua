-- Stores the sink's result for the waiting client and cleans up (one round trip, atomic).
--
-- KEYS[1]  dag:{id}:status   ARGV[1]  the encoded outcome pushed for the waiting client
-- KEYS[2]  dag:{id}:result   ARGV[2]  number of nodes in the plan (-1: keep the intermediate state)
-- KEYS[3]  dag:{id}:plan     ARGV[3]  the key prefix dag:{id}:
-- KEYS[4]  dag:{id}:events   ARGV[4]  the keys' time to live (ms), for the keys this creates
--
-- Returns 1 if this call ended the DAG, 0 if it had already ended or is unknown.
if redis.call('GET', KEYS[1]) ~= 'running' then
  return 0
end
redis.call('SET', KEYS[1], 'succeeded', 'KEEPTTL')
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 1000, '*', 'event', 'succeeded')
redis.call('PEXPIRE', KEYS[4], ARGV[4], 'NX')
delete_intermediate(ARGV[3], tonumber(ARGV[2]), KEYS[3])
return 1
