-- Shared by fail.lua and finish.lua (prepended to them): deletes a DAG's intermediate state,
-- the plan and every out:<n> and done:<n> key, in batches that stay below Lua's unpack limit.
-- All keys share the DAG's hash tag, so they live in the same cluster slot as the declared keys.
-- A negative node count keeps everything (RedisConfig::keep_finished); cancel never passes one.
local function delete_intermediate(prefix, nodes, plan_key)
  if nodes < 0 then
    return
  end
  redis.call('UNLINK', plan_key)
  local batch = {}
  for n = 0, nodes - 1 do
    batch[#batch + 1] = prefix .. 'out:' .. n
    batch[#batch + 1] = prefix .. 'done:' .. n
    if #batch >= 1000 then
      redis.call('UNLINK', unpack(batch))
      batch = {}
    end
  end
  if #batch > 0 then
    redis.call('UNLINK', unpack(batch))
  end
end
