-- backoff_ms(initial, base, attempt, jitter): initial * base^(attempt-1) * jitter, capped at
-- MAX_BACKOFF_MS (one day, as workpool.retry.MAX_BACKOFF_MS); never NaN or inf (0 * inf would
-- be NaN, and a script error after its first write would leave a job half-moved: Redis scripts
-- have no rollback).
local MAX_BACKOFF_MS = 86400000
local function backoff_ms(initial, base, attempt, jitter)
  if initial <= 0 then
    return 0
  end
  local wait = initial * base ^ (attempt - 1) * jitter
  if wait ~= wait or wait > MAX_BACKOFF_MS then
    return MAX_BACKOFF_MS
  end
  return math.floor(wait)
end
