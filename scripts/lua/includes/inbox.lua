-- INBOX_TTL_MS: how long a worker's inbox is kept after a job is put in it. It outlives any
-- lease, so the reclaim of a job whose worker never took it still finds it there.
local INBOX_TTL_MS = 86400000
